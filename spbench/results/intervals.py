"""Bootstrap intervals in the result record, and the data they are resampled from in the run folder.

When a metric is scored, its headline gets an interval over prompts (:mod:`spbench.metrics.bootstrap`),
stored in the record next to it as ``metrics.<metric>.bootstrap``::

    "bootstrap": {"key": "AP", "low": 61.2, "high": 70.4, "confidence": 0.95, "resamples": 1000,
                  "seed": 0, "num_prompts": 995, "num_undefined": 0, "method": "...", ...}

or ``{"key": ..., "skipped": "<why>"}``. Settings: ``evaluation.bootstrap_resamples`` (1000; 0 turns
intervals off), ``evaluation.bootstrap_fid_resamples`` (FID's, 100; 0 turns FID's off),
``evaluation.bootstrap_seed`` (0), ``evaluation.bootstrap_confidence`` (0.95). FID's block adds
``note``: why its interval is not centred on the estimate.

What the resampling needs is kept in the run folder, so that ``spbench compare`` can resample two
runs on the same draws: ``RUN/bootstrap/<metric key>.json.gz`` (gzipped JSON) holds, per scored
image, its ground truth and detections in COCO form (pose, detection: the predictions themselves,
which ``per_image.jsonl`` does not keep) or its group and value (CLIP); ``RUN/bootstrap/fid.npz``
(numpy, no pickle) holds each generated image's Inception features (float32) with its sample id
and k, and the reference moments. A run scored before these files existed still compares on CLIP,
read from ``per_image.jsonl``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from spbench.errors import SpbenchError
from spbench.files import atomic_write_bytes, dumps
from spbench.metrics.bootstrap import (BootstrapSettings, DATA_FORMAT, FID_BIAS_NOTE, FID_OLD_REASON,
                                       EvaluatorResampler, FidResampler, Resampler, fid_data_arrays,
                                       fid_data_from_arrays, fid_resamples, interval, resampler_for,
                                       resampler_from_data)
from spbench.metrics.spec import metric_spec

BOOTSTRAP_DIR = "bootstrap"


def data_path(run_dir: str | Path, key: str) -> Path:
    """Where the bootstrap data of the metric ``key`` (``pose``, ``pose@oracle``) of a run lives."""
    return Path(run_dir) / BOOTSTRAP_DIR / f"{key}.json.gz"


def features_path(run_dir: str | Path, key: str) -> Path:
    """Where FID's bootstrap data (features, ``.npz``) of the metric ``key`` of a run lives."""
    return Path(run_dir) / BOOTSTRAP_DIR / f"{key}.npz"


def write_features(path: Path, data: dict) -> str:
    """Write FID's bootstrap data as an uncompressed ``.npz`` (fixed zip dates: the same data gives
    the same bytes); returns its sha256."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, array in fid_data_arrays(data).items():
            with zf.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    raw = buf.getvalue()
    atomic_write_bytes(path, raw)
    return hashlib.sha256(raw).hexdigest()


def read_features(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return fid_data_from_arrays({name: arrays[name] for name in arrays.files})
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise SpbenchError(f"{path}: not readable FID bootstrap data ({e}); rescore the run with `spbench evaluate` "
                           "to rewrite it") from None


def write_data(path: Path, data: dict) -> str:
    """Write the data gzipped (mtime 0: the same data gives the same bytes); returns its sha256."""
    raw = gzip.compress(dumps(data, separators=(",", ":")).encode("utf-8"), mtime=0)
    atomic_write_bytes(path, raw)
    return hashlib.sha256(raw).hexdigest()


def read_data(path: Path) -> dict:
    try:
        return json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as e:
        raise SpbenchError(f"{path}: not readable bootstrap data ({e}); rescore the run with `spbench evaluate` "
                           "to rewrite it") from None


def score_interval(run_dir: str | Path, key: str, metric: str, evaluator, config: dict, progress=None) -> dict:
    """The ``bootstrap`` block of a freshly scored metric (``key``: where it lives in the record,
    ``metric``: its name); writes (or removes) the run folder's bootstrap data for it. A failure
    to resample is recorded as the reason (with a warning), never lost scores."""
    settings = BootstrapSettings.from_config(config)
    headline = metric_spec(metric).key
    path, fid_path = data_path(run_dir, key), features_path(run_dir, key)
    note = {}
    try:
        found = resampler_for(evaluator, headline)
        if isinstance(found, str):
            path.unlink(missing_ok=True)
            fid_path.unlink(missing_ok=True)
            return {"key": headline, "skipped": found}
        stored = None
        if isinstance(found, FidResampler):
            path.unlink(missing_ok=True)
            resamples, why_not = fid_resamples(config)
            if why_not:
                fid_path.unlink(missing_ok=True)
                return {"key": headline, "resamples": 0, "skipped": why_not}
            settings, note = dataclasses.replace(settings, resamples=resamples), {"note": FID_BIAS_NOTE}
            stored = {"file": f"{BOOTSTRAP_DIR}/{fid_path.name}", "sha256": write_features(fid_path, found.data)}
        elif found.data is not None:
            fid_path.unlink(missing_ok=True)
            stored = {"file": f"{BOOTSTRAP_DIR}/{path.name}", "sha256": write_data(path, found.data)}
        else:
            path.unlink(missing_ok=True)
            fid_path.unlink(missing_ok=True)
        task = None
        if progress is not None and settings.resamples and len(found.prompts) > 1:
            task = progress.add_task(f"bootstrap {key}", total=settings.resamples)
        block = interval(found, settings, progress=(lambda: progress.advance(task)) if task is not None else None)
    except Exception as e:  # e.g. a metric whose compute() does not survive relabelled prompts
        import warnings

        reason = f"resampling failed ({type(e).__name__}: {e})"
        warnings.warn(f"{key}: no bootstrap interval: {reason}", stacklevel=2)
        return {"key": headline, "skipped": reason}
    return {**block, **note, "data": stored}


def load_resampler(run_dir: str | Path, key: str, record: dict | None = None) -> Resampler | str:
    """The resampler of the metric ``key`` of a scored run folder, or why there is none."""
    run_dir = Path(run_dir)
    block = (((record or {}).get("metrics") or {}).get(key) or {}).get("bootstrap")
    block = block if isinstance(block, dict) else {}
    rescore = f"rescore it with `spbench evaluate {run_dir} --metrics {key.partition('@')[0]}`"
    path = data_path(run_dir, key)
    fid_path = features_path(run_dir, key)
    if fid_path.is_file():
        expected = (block.get("data") or {}).get("sha256")
        if expected and hashlib.sha256(fid_path.read_bytes()).hexdigest() != expected:
            raise SpbenchError(f"{fid_path} is not the data {run_dir / 'result.json'} was scored with (its sha256 "
                               f"differs): {rescore}")
        return resampler_from_data(read_features(fid_path))
    if str(block.get("skipped") or "").startswith(FID_OLD_REASON):
        return (f"the run was scored before spbench kept each image's Inception features for FID's interval "
                f"({fid_path} does not exist): {rescore}")
    if path.is_file():
        expected = (block.get("data") or {}).get("sha256")
        if expected and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise SpbenchError(f"{path} is not the data {run_dir / 'result.json'} was scored with (its sha256 "
                               f"differs): {rescore}")
        return resampler_from_data(read_data(path))
    if block.get("skipped"):
        return str(block["skipped"])
    if block.get("resampled") == EvaluatorResampler.kind:
        return (f"{key}'s interval was resampled in memory by its evaluator's own compute(), which leaves no data "
                "to resample later (its evaluator has no bootstrap_data(), spbench.metrics.bootstrap)")
    if key.partition("@")[0] == "clip":
        rows = _per_image_rows(run_dir, key)
        if rows:
            return resampler_from_data({
                "format": DATA_FORMAT, "metric": "clip", "key": metric_spec("clip").key, "kind": "grouped_mean",
                "images": [{"sample_id": r["sample_id"], "k": r["k"], "group": r.get("category", ""),
                            "value": r["score"]} for r in rows]})
    return f"{path} does not exist (the run was scored before spbench kept the data intervals are resampled from): {rescore}"


def _per_image_rows(run_dir: Path, key: str) -> list[dict]:
    path = run_dir / "per_image.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("metric") == key and "score" in row and "sample_id" in row:
            rows.append(row)
    return rows


def headline_problem(key: str) -> str | None:
    """Why ``key`` (``pose.AP``) is not a metric headline that intervals are recorded for, or None."""
    metric, _, headline = key.partition(".")
    try:
        spec = metric_spec(metric)
    except KeyError:
        return f"{metric} is not a known metric"
    if headline != spec.key:
        return f"intervals are recorded for the headline {metric.partition('@')[0]}.{spec.key} only, not {key}"
    return None


def record_interval(data: dict, key: str) -> tuple[float, float] | str:
    """(low, high) of the interval a record (its data) holds for the headline ``key``
    (``pose.AP``, ``pose@oracle.AP``), or why there is none."""
    problem = headline_problem(key)
    if problem:
        return problem
    metric, _, headline = key.partition(".")
    result = (data.get("metrics") or {}).get(metric)
    if not isinstance(result, dict):
        return f"the record has no {metric}"
    block = result.get("bootstrap")
    if not isinstance(block, dict):
        return f"the record has no bootstrap interval for {key} (scored before spbench recorded one: rescore it)"
    if block.get("skipped"):
        return f"no interval for {key}: {block['skipped']}"
    low, high = block.get("low"), block.get("high")
    if block.get("key") != headline or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        return f"the record's bootstrap interval for {key} is incomplete"
    return float(low), float(high)
