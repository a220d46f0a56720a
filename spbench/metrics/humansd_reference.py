"""The real-image features of HumanSD's FID and KID: every real image of the split (HumanSD: the
validation set of its annotation file), prepared as :func:`spbench.metrics.humansd_inception.real_pixels`
does, computed on the main process and cached in
``<paths.cache>/humansd/<dataset>-<split>-<split hash>-<extractor>-<feature>-<code>-<digest>.npz``
(digest over every setting, which the file also stores and is checked on load)."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np

from spbench.files import atomic_write_bytes, cache_root
from spbench.metrics.evaluate import ScoringContext, batches
from spbench.metrics.fid_reference import read_cached_arrays
from spbench.metrics.humansd_inception import REAL_WORDS, HumanSDExtractor, real_features

CACHE_VERSION = 1


def reference_settings(ctx: ScoringContext, extractor: HumanSDExtractor, code: str) -> dict:
    data = ctx.run_info["dataset"]
    return {"version": CACHE_VERSION, "dataset": data["name"], "split": data["split"], "split_hash": data["hash"],
            "num_samples": len(ctx.samples), "extractor": extractor.name, "weights": extractor.weights,
            "feature": extractor.feature, "num_features": extractor.num_features, "real_images": REAL_WORDS[code]}


def cache_path(config: dict, settings: dict, code: str) -> Path:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    parts = [settings["dataset"], settings["split"], settings["split_hash"], settings["extractor"],
             settings["feature"], code, digest]
    name = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)) for p in parts)
    return cache_root(config) / "humansd" / f"{name}.npz"


def _load(path: Path, settings: dict) -> np.ndarray | None:
    arrays = read_cached_arrays(path, settings, ("features",))
    return None if arrays is None else arrays["features"]


def reference_features(ctx: ScoringContext, extractor: HumanSDExtractor, code: str, batch_size: int,
                       progress=None) -> tuple[np.ndarray, dict, Path, bool]:
    """Features [N, D] of the split's real images, from the cache or computed and cached.
    Returns (features, settings, cache path, reused)."""
    settings = reference_settings(ctx, extractor, code)
    path = cache_path(ctx.config, settings, code)
    cached = _load(path, settings)
    if cached is not None:
        return cached, settings, path, True
    samples = list(ctx.samples.values())
    feats = []
    task = progress.add_task(f"HumanSD real-image features ({extractor.feature})", total=len(samples)) if progress else None
    for chunk in batches(samples, batch_size):
        images = [ctx.reference_image(s, "HumanSD's FID/KID need") for s in chunk]
        feats.append(real_features(extractor, images, code))
        if progress:
            progress.advance(task, len(chunk))
    features = np.concatenate(feats) if feats else np.zeros((0, extractor.num_features))
    buf = io.BytesIO()
    np.savez(buf, settings=np.array(json.dumps(settings, sort_keys=True)), features=features)
    atomic_write_bytes(path, buf.getvalue())
    return features, settings, path, False
