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

from spbench.config import upgrade_config
from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.files import atomic_write_json, atomic_write_jsonl, read_jsonl_rows
from spbench.run.requests import Request

# Settings that change the images; a run folder refuses to be resumed under other values.
IMAGE_SETTINGS = (
    ("dataset", ("name", "split", "ann", "schema_sha256")),  # schema_sha256: a schema file's (else None)
    ("method", None),
    ("models", ("base", "controlnet", "t2i_adapter", "depth_estimator", "segmenter",
                # the newer bases' models (spbench_baselines.controlnet_sdxl / _sd3 / _flux)
                "sdxl_base", "sdxl_vae", "controlnet_sdxl_xinsir", "controlnet_sdxl_thibaud", "sd3_base",
                "controlnet_sd3", "flux_base", "controlnet_flux_union", "controlnet_flux_union_pro")),
    ("generation", ("steps", "guidance_scale", "conditioning_scale", "scheduler", "negative_prompt", "seed", "canvas", "canvas_mode", "condition_render", "dtype")),
)
# What a run.json written before a setting existed was made with.
LEGACY_VALUES = {("generation", "condition_render"): "native"}  # conditions were drawn on the canvas

# What every manifest line must hold for scoring (engine.manifest_row writes them all).
MANIFEST_KEYS = ("sample_id", "k", "seed", "prompt", "canvas", "file")
SAMPLE_KEYS = ("sample_id", "image_id", "file", "width", "height", "schema", "instances", "prompt_template")


def image_settings(config: dict, now: dict | None = None) -> dict:
    """The settings of ``config`` that change the images. For a config written before a setting
    existed (``now``: the config it is compared with), the setting is what LEGACY_VALUES says it
    was, else the value it has now (e.g. the model of a method added since, which that run did not use)."""
    out = {}
    for section, keys in IMAGE_SETTINGS:
        values = config.get(section, {})
        if keys is None:
            out[section] = dict(values)
            continue
        current = (now or {}).get(section, {})
        out[section] = {k: values[k] if k in values else LEGACY_VALUES.get((section, k), current.get(k)) for k in keys}
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
            before, now = image_settings(old["config"], config), image_settings(config)
            if before != now:
                diff = _first_difference(before, now)
                raise SpbenchError(
                    f"{self.path} holds a run made with other settings ({diff}); "
                    "pass another --out, or delete that folder to start over"
                )
            # The condition kind a method resolved (e.g. from its checkpoint) is not a config value.
            kind_then, kind_now = ((i.get("method") or {}).get("condition") for i in (old, run_info))
            if kind_then and kind_now and kind_then != kind_now:
                raise SpbenchError(
                    f"{self.path} holds a run conditioned on {kind_then!r}, this one on {kind_now!r}; "
                    "pass another --out, or set method.options.condition to match"
                )
            changed = self._changed_data(old, run_info, samples)
            if changed:
                raise SpbenchError(
                    f"{self.path} holds a run made from other data ({changed}): its images and conditions "
                    "belong to those poses; pass another --out, or delete that folder to start over"
                )
        self.path.mkdir(parents=True, exist_ok=True)
        # A killed process can leave its temporary file behind (never a partial image).
        for stale in self.path.rglob(".*.tmp"):
            stale.unlink(missing_ok=True)
        atomic_write_json(self.run_json, {**run_info, "config": config})
        atomic_write_jsonl(self.samples_jsonl, (s.to_dict() for s in samples))

    def _changed_data(self, old: dict, run_info: dict, samples: list[Sample]) -> str:
        """How the data of a resumed run differs from the data it was made from ("" if it does not).

        Every sample both runs hold must be the same (poses, boxes, sizes, prompt; compared as the
        split hash compares them), so a different ``--limit`` may extend a run but another
        ``--data-root`` with other poses under the same file names may not. Methods that read the
        reference images (real, depth, mask) also record each image file's size in bytes.
        """
        before_refs = (old.get("dataset") or {}).get("reference_images") or {}
        now_refs = (run_info.get("dataset") or {}).get("reference_images") or {}
        for sid in sorted(set(before_refs) & set(now_refs)):
            if before_refs[sid] != now_refs[sid]:
                return f"sample {sid}: reference image of {before_refs[sid]} bytes there, {now_refs[sid]} now"
        try:
            before = {d["sample_id"]: d for d in read_jsonl_rows(self.samples_jsonl, "", SAMPLE_KEYS)}
        except (OSError, SpbenchError):
            before = None
        if before is None:  # no readable record of the old samples: the split hashes must agree
            a, b = (old.get("dataset") or {}).get("hash"), (run_info.get("dataset") or {}).get("hash")
            return f"split hash {a} there, {b} now" if a and b and a != b else ""
        for sample in samples:
            then = before.get(sample.sample_id)
            if then is None:
                continue
            now = _comparable(sample.to_dict())
            then = _comparable(then)
            if then != now:
                a, b = (old.get("dataset") or {}).get("hash"), (run_info.get("dataset") or {}).get("hash")
                hashes = f"; split hash {a} there, {b} now" if a and b and a != b else ""
                return f"sample {sample.sample_id}: {_value_difference(then, now)}{hashes}"
        return ""

    def write_manifest(self, rows: list[dict]) -> None:
        atomic_write_jsonl(self.manifest_jsonl, rows)

    # -- evaluation side ------------------------------------------------------------------
    def read_run(self) -> dict:
        if not self.run_json.is_file():
            raise SpbenchError(f"{self.path} is not a run folder (no run.json): pass a folder written by `spbench generate` or `spbench run`")
        try:
            info = json.loads(self.run_json.read_text())
        except json.JSONDecodeError as e:
            raise SpbenchError(f"{self.run_json}: not valid JSON ({e})") from None
        if isinstance(info, dict) and isinstance(info.get("config"), dict):
            upgrade_config(info["config"])
        return info

    def read_samples(self) -> dict[str, Sample]:
        fix = "rerun the same `spbench generate` command to rewrite it (finished images are kept)"
        if not self.samples_jsonl.is_file():
            raise SpbenchError(f"{self.samples_jsonl} is missing; {fix}")
        out = {}
        for number, d in enumerate(read_jsonl_rows(self.samples_jsonl, fix, SAMPLE_KEYS), 1):
            try:
                out[d["sample_id"]] = Sample.from_dict(d)
            except (KeyError, TypeError, ValueError) as e:
                raise SpbenchError(f"{self.samples_jsonl}: sample {number} is incomplete or malformed ({type(e).__name__}: {e}); {fix}") from None
        return out

    def read_manifest(self) -> list[dict]:
        if not self.manifest_jsonl.is_file():
            raise SpbenchError(f"{self.manifest_jsonl} is missing: the generation did not finish; rerun the same `spbench generate` command to complete it")
        fix = ("delete it and rerun the same `spbench generate` command to rewrite it "
               "(finished images are kept)")
        rows = read_jsonl_rows(self.manifest_jsonl, fix, MANIFEST_KEYS)
        if not rows:
            raise SpbenchError(f"{self.manifest_jsonl} lists no images; {fix}")
        for number, row in enumerate(rows, 1):
            if not isinstance(row["canvas"], dict) or not isinstance(row["file"], str) or not isinstance(row["k"], int):
                raise SpbenchError(f"{self.manifest_jsonl}: line {number} is malformed (canvas, file or k); {fix}")
        return rows

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


def _value_difference(a, b, path: str = "") -> str:
    """Where two JSON values first differ: ``instances[0].keypoints[3][0]: 33.4 there, 30.1 now``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _value_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _value_difference(x, y, f"{path}[{i}]")
    return f"{path or 'value'}: {str(a)[:60]} there, {str(b)[:60]} now"


def _comparable(sample: dict) -> dict:
    """A sample as the split hash sees it (JSON types, without ``extra``)."""
    d = json.loads(json.dumps({k: v for k, v in sample.items() if k != "extra"}, default=str))
    return d


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
