"""The run folder: the contract between generation and evaluation.

    RUN_DIR/
      run.json          resolved config, dataset and split hash, method, seed scheme
      samples.jsonl     the split's samples (poses, prompts) the run was made from
      conditions/       one condition image per sample (<sample_id>.png)
      images/           one image per request (<sample_id>_k<k>.png), written atomically
      manifest.jsonl    one line per finished request: sample id, k, seed, prompt, condition,
                        canvas transform, file
      result.json       the result record (after evaluation)
      per_image.jsonl   per-image metric records (after evaluation)
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.files import atomic_write_json, atomic_write_jsonl, read_jsonl
from spbench.methods.base import Request

# Settings that change the images; a run folder refuses to be resumed under other values.
IMAGE_SETTINGS = (
    ("dataset", ("name", "split", "ann")),
    ("method", None),
    ("models", ("base", "controlnet", "t2i_adapter", "depth_estimator", "segmenter")),
    ("generation", ("steps", "guidance_scale", "conditioning_scale", "scheduler", "negative_prompt", "seed", "canvas", "canvas_mode", "dtype")),
)


def image_settings(config: dict) -> dict:
    out = {}
    for section, keys in IMAGE_SETTINGS:
        values = config.get(section, {})
        out[section] = dict(values) if keys is None else {k: values.get(k) for k in keys}
    return out


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    run_json = property(lambda self: self.path / "run.json")
    samples_jsonl = property(lambda self: self.path / "samples.jsonl")
    manifest_jsonl = property(lambda self: self.path / "manifest.jsonl")
    result_json = property(lambda self: self.path / "result.json")
    per_image_jsonl = property(lambda self: self.path / "per_image.jsonl")

    def image_file(self, request: Request) -> Path:
        return self.path / "images" / f"{request.key}.png"

    def condition_file(self, sample: Sample) -> Path:
        return self.path / "conditions" / f"{sample.sample_id}.png"

    def is_done(self, request: Request) -> bool:
        return self.image_file(request).is_file()

    # -- generation side ------------------------------------------------------------------
    def start(self, config: dict, run_info: dict, samples: list[Sample]) -> None:
        """Create or resume: an existing folder must have been made with the same image settings."""
        if self.run_json.is_file():
            old = self.read_run()
            before, now = image_settings(old["config"]), image_settings(config)
            if before != now:
                diff = _first_difference(before, now)
                raise SpbenchError(
                    f"{self.path} holds a run made with other settings ({diff}); "
                    "pass another --out, or delete that folder to start over"
                )
        self.path.mkdir(parents=True, exist_ok=True)
        # A killed process can leave its temporary file behind (never a partial image).
        for stale in self.path.rglob(".*.tmp"):
            stale.unlink(missing_ok=True)
        atomic_write_json(self.run_json, {**run_info, "config": config})
        atomic_write_jsonl(self.samples_jsonl, (s.to_dict() for s in samples))

    def write_manifest(self, rows: list[dict]) -> None:
        atomic_write_jsonl(self.manifest_jsonl, rows)

    # -- evaluation side ------------------------------------------------------------------
    def read_run(self) -> dict:
        if not self.run_json.is_file():
            raise SpbenchError(f"{self.path} is not a run folder (no run.json): pass a folder written by `spbench generate` or `spbench run`")
        try:
            return json.loads(self.run_json.read_text())
        except json.JSONDecodeError as e:
            raise SpbenchError(f"{self.run_json}: not valid JSON ({e})") from None

    def read_samples(self) -> dict[str, Sample]:
        return {d["sample_id"]: Sample.from_dict(d) for d in read_jsonl(self.samples_jsonl)}

    def read_manifest(self) -> list[dict]:
        if not self.manifest_jsonl.is_file():
            raise SpbenchError(f"{self.manifest_jsonl} is missing: the generation did not finish; rerun the same `spbench generate` command to complete it")
        return read_jsonl(self.manifest_jsonl)

    def verify_images(self, manifest: list[dict]) -> None:
        """Every listed image exists and decodes (integrity check before scoring)."""
        bad = []
        for row in manifest:
            path = self.path / row["file"]
            try:
                with Image.open(path) as im:
                    im.verify()
            except Exception:
                bad.append(row["file"])
        if bad:
            raise SpbenchError(f"{self.path}: {len(bad)} listed image(s) missing or corrupt, first {bad[0]}; rerun the same generate command to regenerate them")


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            d = _first_difference(va, vb, f"{prefix}{key}.")
            if d:
                return d
        elif va != vb:
            return f"{prefix}{key}: {va!r} there, {vb!r} now"
    return ""
