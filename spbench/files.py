"""Atomic file writes and JSON-lines helpers: a killed process never leaves a half-written file."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable


def current_umask() -> int:
    """The process's umask, read without changing it (os.umask sets it, which would race with the
    image writer's threads): from /proc on Linux, else set and restored once."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; the finished file gets what open() would give: 0666 & ~umask.
        os.chmod(tmp, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj):
    """``obj`` with every NaN or infinite float (numpy's too) turned into None, numpy scalars and
    arrays into plain numbers and lists, tuples into lists: what strict JSON can hold. A value
    that can legitimately be undefined (an AP over no instances, the std of one k) becomes null,
    never the bare ``NaN`` that strict JSON readers refuse."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    item = getattr(obj, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(obj, "shape", None) == ():
        return json_safe(item())
    tolist = getattr(obj, "tolist", None)  # numpy arrays
    if callable(tolist):
        return json_safe(tolist())
    return obj


def dumps(obj, **kwargs) -> str:
    """``json.dumps`` of :func:`json_safe` ``(obj)`` with ``allow_nan=False``: no bare NaN/Infinity."""
    return json.dumps(json_safe(obj), allow_nan=False, default=str, **kwargs)


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_jsonl(path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(dumps(r, sort_keys=False) + "\n" for r in rows))


def atomic_save_image(path, image) -> None:
    """Save a PIL image atomically; the format comes from the file suffix."""
    import io

    buf = io.BytesIO()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}[Path(path).suffix.lower()]
    image.save(buf, format=fmt)
    atomic_write_bytes(path, buf.getvalue())


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_jsonl_rows(path, fix: str, required: Iterable[str] = ()) -> list[dict]:
    """The rows of a JSON-lines file spbench wrote; a truncated or incomplete line (not JSON, not
    an object, or without one of the ``required`` keys) is a one-line SpbenchError naming the file,
    the line and ``fix``."""
    from spbench.errors import SpbenchError

    required = tuple(required)
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = list(f)
    except UnicodeDecodeError:
        raise SpbenchError(f"{path}: not a UTF-8 text file; {fix}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SpbenchError(f"{path}: line {number} is truncated or not JSON ({e.msg}); {fix}") from None
        if not isinstance(row, dict):
            raise SpbenchError(f"{path}: line {number}: expected a JSON object, got {type(row).__name__}; {fix}")
        missing = [k for k in required if k not in row]
        if missing:
            raise SpbenchError(f"{path}: line {number} is incomplete (no {', '.join(missing)}); {fix}")
        rows.append(row)
    return rows


def cache_root(config: dict) -> Path:
    """Where spbench caches (FID reference statistics, extracted conditions): ``paths.cache``,
    else ``$SPBENCH_CACHE``, else ``~/.cache/spbench``."""
    configured = (config.get("paths") or {}).get("cache") or os.environ.get("SPBENCH_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "spbench"


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, in hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

