"""FID's reference statistics: the moments of the split's real images, brought to the canvas as
the Real Image row does (``image_to_canvas``: PIL bicubic; letterbox pads black), computed on the
main process and cached in
``<paths.cache>/fid/<dataset>-<split>-<split hash>-<W>x<H>-<mode>-<extractor>-<resize>-<digest>.npz``
(digest over every setting, which the file also stores and is checked on load); written
atomically and recomputed whenever a setting differs."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from spbench.canvas import CanvasTransform, image_to_canvas
from spbench.files import atomic_write_bytes, cache_root
from spbench.metrics.evaluate import ScoringContext, batches
from spbench.metrics.fid_inception import FeatureExtractor
from spbench.metrics.fid_moments import Moments

REFERENCE_TO_CANVAS = "image_to_canvas (PIL bicubic; letterbox pads black)"
CACHE_VERSION = 1


def reference_settings(ctx: ScoringContext, extractor: FeatureExtractor) -> dict:
    """Everything that decides the reference statistics (the cache key)."""
    gen, data = ctx.config["generation"], ctx.run_info["dataset"]
    size = gen["canvas"]
    width, height = (size, size) if isinstance(size, int) else tuple(size)
    return {
        "version": CACHE_VERSION, "dataset": data["name"], "split": data["split"], "split_hash": data["hash"],
        "num_samples": len(ctx.samples), "canvas": [width, height], "canvas_mode": gen["canvas_mode"],
        "to_canvas": REFERENCE_TO_CANVAS, "extractor": extractor.name, "weights": extractor.weights,
        "num_features": extractor.num_features, "resize": extractor.resize,
    }


def reference_cache_path(config: dict, settings: dict) -> Path:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    resize = "tf1" if settings["resize"].startswith("TensorFlow") else "aa"
    parts = [settings["dataset"], settings["split"], settings["split_hash"], "{}x{}".format(*settings["canvas"]),
             settings["canvas_mode"], settings["extractor"], resize, digest]
    name = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)) for p in parts)
    return cache_root(config) / "fid" / f"{name}.npz"


def read_cached_arrays(path: Path, settings: dict, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays ``keys`` of a cache file written with ``settings`` (an .npz with a ``settings``
    JSON entry), or None if absent, unreadable or made under other settings."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if json.loads(str(f["settings"])) != settings:
                return None
            return {key: f[key].copy() for key in keys}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def load_reference(path: Path, settings: dict) -> Moments | None:
    """The cached moments, or None if absent, unreadable or made under other settings."""
    arrays = read_cached_arrays(path, settings, ("n", "sum", "outer"))
    if arrays is None:
        return None
    m = Moments(0)
    m.n, m.sum, m.outer = int(arrays["n"]), arrays["sum"], arrays["outer"]
    return m


def save_reference(path: Path, settings: dict, m: Moments) -> None:
    buf = io.BytesIO()
    np.savez(buf, settings=np.array(json.dumps(settings, sort_keys=True)), n=np.array(m.n), sum=m.sum, outer=m.outer)
    atomic_write_bytes(path, buf.getvalue())


def reference_moments(ctx: ScoringContext, extractor: FeatureExtractor, batch_size: int,
                      progress=None) -> tuple[Moments, dict, Path, bool]:
    """Moments of the split's real images on the canvas: from the cache, or computed and cached.
    Returns (moments, settings, cache path, reused)."""
    settings = reference_settings(ctx, extractor)
    path = reference_cache_path(ctx.config, settings)
    cached = load_reference(path, settings)
    if cached is not None:
        return cached, settings, path, True
    size, mode = tuple(settings["canvas"]), settings["canvas_mode"]
    moments = Moments(extractor.num_features)
    samples = list(ctx.samples.values())
    task = progress.add_task("FID reference statistics", total=len(samples)) if progress else None
    for chunk in batches(samples, batch_size):
        images = [image_to_canvas(ctx.reference_image(s, "FID needs"), CanvasTransform.fit(s.width, s.height, size, mode))
                  for s in chunk]
        moments.add(extractor(images))
        if progress:
            progress.advance(task, len(chunk))
    save_reference(path, settings, moments)
    return moments, settings, path, False
