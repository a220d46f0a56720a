"""What the report reads from a run folder: run.json, samples, manifest, result and per-image records.

Plain JSON reading only (no torch), so a report of many runs starts instantly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from spbench.data.registry import stand_in
from spbench.errors import SpbenchError
from spbench.files import read_jsonl
from spbench.registry import is_tiny_spec
from spbench.results.load import Loaded


@dataclass
class RunView:
    path: Path
    info: dict                 # run.json
    samples: dict[str, dict]   # sample_id -> samples.jsonl row
    images: dict[str, dict]    # sample_id -> {k: manifest row}
    record: Loaded | None      # result.json, when evaluated
    problems: list[str]        # what could not be read (shown in the report)
    label: str = ""            # how the report names the run (unique among the runs shown)

    @property
    def name(self) -> str:
        return self.info.get("run") or self.path.name

    @property
    def title(self) -> str:
        m, d = self.info["method"], self.info["dataset"]
        method = m["name"] + (f" [{m['variant']}]" if m.get("variant") else "")
        return f"{method} — {d['name']}/{d.get('split')}"

    @property
    def tiny(self) -> bool:
        """A tiny profile, or any tiny model (the record says so; run.json's base model)."""
        config = self.info.get("config") or {}
        base = (config.get("models") or {}).get("base")
        return (bool((config.get("profile") or {}).get("tiny")) or bool(self.record and self.record.tiny)
                or is_tiny_spec(base))

    @property
    def departures(self) -> list[str]:
        """Settings of the run that depart from the paper's protocol."""
        if self.record:
            return self.record.departures
        from spbench.results.protocol import departures

        return departures(self.info.get("config") or {}, (self.info.get("method") or {}).get("name"))

    @property
    def dataset_key(self) -> str:
        """The dataset whose cells this run fills (the sample's split for the shipped sample)."""
        d = self.info["dataset"]
        return stand_in(d["name"], d.get("split"))[0]

    def reference_image(self, sample_id: str) -> Path | None:
        root = self.info["dataset"].get("data_root")
        sample = self.samples.get(sample_id)
        if not root or not sample:
            return None
        path = Path(root) / sample["file"]
        return path if path.is_file() else None

    def per_image(self) -> list[dict]:
        path = self.path / "per_image.jsonl"
        return read_jsonl(path) if path.is_file() else []


def read_run(path: str | Path) -> RunView:
    path = Path(path)
    if not path.is_dir():
        raise SpbenchError(f"{path}: no such run folder")
    run_json = path / "run.json"
    if not run_json.is_file():
        raise SpbenchError(f"{path} is not a run folder (no run.json): pass folders written by `spbench run` or `spbench generate`")
    try:
        info = json.loads(run_json.read_text())
        samples = {s["sample_id"]: s for s in read_jsonl(path / "samples.jsonl")} if (path / "samples.jsonl").is_file() else {}
        manifest = read_jsonl(path / "manifest.jsonl") if (path / "manifest.jsonl").is_file() else []
    except (json.JSONDecodeError, KeyError) as e:
        raise SpbenchError(f"{path}: run.json, samples.jsonl or manifest.jsonl is malformed ({e})") from None
    images: dict[str, dict] = {}
    for row in manifest:
        images.setdefault(row["sample_id"], {})[int(row["k"])] = row
    record, problems = None, []
    if (path / "result.json").is_file():
        try:
            record = Loaded(path / "result.json", json.loads((path / "result.json").read_text()))
        except json.JSONDecodeError as e:
            problems.append(f"result.json is not valid JSON ({e}); metrics not shown")
    elif not manifest:
        problems.append("no manifest.jsonl: generation has not finished")
    return RunView(path, info, samples, images, record, problems)
