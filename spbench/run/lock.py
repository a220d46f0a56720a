"""One process at a time in a run folder: an advisory lock on ``RUN_DIR/.lock``.

Two ``spbench run`` commands into one folder would each generate every missing image (the
second doing all the work again) and race on manifest.jsonl and result.json. The first takes
``fcntl.flock`` on ``RUN_DIR/.lock`` and writes its pid there; a second stops at once with a
one-line message naming that pid. The kernel drops the lock when its process ends, however it
ends (even ``kill -9``), so a lock is never stale. Re-entrant within a process, so ``spbench
run`` holds it from generation through scoring. Where ``fcntl`` does not exist (Windows), no lock.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from spbench.errors import SpbenchError

LOCK_FILE = ".lock"

_held: dict[str, list] = {}  # resolved run folder -> [fd, depth]


def _key(run_dir: str | os.PathLike) -> str:
    return str(Path(run_dir).resolve())


def acquire(run_dir: str | os.PathLike) -> None:
    """Take the run folder's lock (creating the folder), or raise SpbenchError naming the holder."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    key = _key(run_dir)
    if key in _held:
        _held[key][1] += 1
        return
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    path = Path(run_dir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
        finally:
            os.close(fd)
        raise SpbenchError(
            f"{run_dir} is in use by another spbench process (pid {holder}): wait for it to finish, then run "
            "the same command again (it resumes from what that one finished)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    _held[key] = [fd, 1]


def release(run_dir: str | os.PathLike) -> None:
    key = _key(run_dir)
    entry = _held.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] > 0:
        return
    del _held[key]
    import fcntl

    try:
        fcntl.flock(entry[0], fcntl.LOCK_UN)
    finally:
        os.close(entry[0])


@contextmanager
def run_lock(run_dir: str | os.PathLike, enabled: bool = True, keep: bool = False):
    """Hold the lock for the block; ``keep``: leave it held until the process ends (or another
    ``release``), so a later step of the same command finds it already taken by itself."""
    if not enabled:
        yield
        return
    acquire(run_dir)
    try:
        yield
    except BaseException:
        release(run_dir)
        raise
    if not keep:
        release(run_dir)
