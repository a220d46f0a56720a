"""Find and read result records (``result.json``) under the folders given with ``--results``.

A malformed file is skipped with a warning naming it; a path that does not exist is a user error.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from spbench.errors import SpbenchError
from spbench.registry import is_tiny_spec

RECORD_FILE = "result.json"
DEFAULT_RESULTS = ("spbench-runs",)  # where `spbench run` writes by default


@dataclass(frozen=True)
class Loaded:
    """One result record and the file it came from."""

    path: Path
    data: dict

    @property
    def dataset(self) -> str:
        return self.data["dataset"]["name"]

    @property
    def split(self) -> str | None:
        return self.data["dataset"].get("split")

    @property
    def method(self) -> str:
        return self.data["method"]["name"]

    @property
    def variant(self) -> str | None:
        return self.data["method"].get("variant")

    @property
    def run_name(self) -> str:
        """The run's name as the user sees it: the folder holding ``result.json`` (the record's
        ``run`` for a record file of another name)."""
        if self.path.name == RECORD_FILE and self.path.parent.name:
            return self.path.parent.name
        return str(self.data.get("run") or self.path.stem)

    @property
    def imported(self) -> bool:
        """Images made outside spbench and scored by it (``imported`` in the method section)."""
        return bool(self.data["method"].get("imported") or self.data.get("imported"))

    @property
    def profile(self) -> str | None:
        return ((self.data.get("config") or {}).get("profile") or {}).get("name")

    @property
    def tiny(self) -> bool:
        """The record says tiny, or (records written before any model counted) its profile is tiny
        or its base model is a tiny one."""
        config = self.data.get("config") or {}
        base = (config.get("models") or {}).get("base")
        return (bool(self.data.get("tiny")) or bool((config.get("profile") or {}).get("tiny"))
                or is_tiny_spec(base))

    @property
    def departures(self) -> list[str]:
        """Settings that depart from the paper's protocol (computed for records that predate the list)."""
        found = self.data.get("departures")
        if isinstance(found, list):
            return [str(d) for d in found]
        config = self.data.get("config")
        if not isinstance(config, dict):
            return []
        from spbench.results.protocol import departures

        scored = [m for m in (self.data.get("metrics") or {}) if "@" not in m]
        return departures(config, self.method, scored)

    def evaluation(self, key: str) -> dict:
        """How the metric of ``key`` (``pose``, ``pose.AP``, ``pose@oracle.AP``) was scored."""
        block = (self.data.get("evaluation") or {}).get(key.split(".")[0])
        return block if isinstance(block, dict) else {}

    def diagnostic(self, key: str) -> str | None:
        """Why the metric of ``key`` is a diagnostic rather than the method's score (the model that
        scored it), or None: flagged ``diagnostic`` in the record, or (older records) scored with
        the ``oracle``."""
        ev = self.evaluation(key)
        if ev.get("diagnostic") or ev.get("model") == "oracle":
            model = ev.get("model")
            return f"scored with the diagnostic model {model}" if model else "a diagnostic score"
        return None

    def invalid(self, key: str) -> str | None:
        """Why the metric of ``key`` is not a valid score (``invalid`` in the record), or None."""
        reason = self.evaluation(key).get("invalid")
        return str(reason) if reason else None

    @property
    def limit(self) -> int | None:
        return ((self.data.get("config") or {}).get("dataset") or {}).get("limit")

    @property
    def date(self) -> str:
        """ISO date of the evaluation (provenance), or the file's mtime when absent."""
        date = (self.data.get("provenance") or {}).get("date")
        if isinstance(date, str):
            return date
        import datetime as dt

        return dt.datetime.fromtimestamp(self.path.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")

    def get(self, dotted: str):
        """The value at a dotted path of the record (``metrics.pose.AP``), or None."""
        return lookup(self.data, dotted)

    def metric(self, key: str) -> float | None:
        """A metric by its key below ``metrics`` (``pose.AP``); None when absent or not a number."""
        return metric_value(self.data.get("metrics"), key)


def lookup(data, dotted: str):
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def metric_value(metrics, key: str) -> float | None:
    """The number at ``key`` (``pose.AP``, ``pose.per_k.0.AP``) in a ``metrics`` block, or None."""
    value = lookup(metrics or {}, key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _problem(data) -> str | None:
    """Why ``data`` is not a usable record, or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    for section, field in (("dataset", "name"), ("method", "name")):
        part = data.get(section)
        if not isinstance(part, dict) or not isinstance(part.get(field), str):
            return f"missing {section}.{field}"
    if not isinstance(data.get("metrics"), dict):
        return "missing metrics"
    return None


def find_record_files(paths: list[str | Path]) -> list[Path]:
    """``result.json`` files: each path is a record file or a folder searched recursively."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                if RECORD_FILE in files:
                    found.append(Path(root) / RECORD_FILE)
        else:
            raise SpbenchError(f"--results {p}: no such file or folder")
    return sorted(set(found))


def load_records(paths: list[str | Path] | None = None, warn=None) -> list[Loaded]:
    """Records found under ``paths`` (default: ./spbench-runs if it exists).

    ``warn(message)`` receives one line per skipped file (default: printed to stderr).
    """
    if warn is None:
        from rich.console import Console

        console = Console(stderr=True)

        def warn(message: str) -> None:
            console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    if not paths:
        paths = [p for p in DEFAULT_RESULTS if Path(p).is_dir()]
    records = []
    for path in find_record_files(paths):
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            warn(f"skipping {path}: not readable JSON ({e})")
            continue
        problem = _problem(data)
        if problem:
            warn(f"skipping {path}: {problem}")
            continue
        records.append(Loaded(path, data))
    return records
