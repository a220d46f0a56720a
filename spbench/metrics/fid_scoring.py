"""Scoring a run's images with FID (:mod:`spbench.metrics.fid`): each process extracts the
features of its generated images as written (canvas size); the main process adds the reference
statistics (:mod:`spbench.metrics.fid_reference`)."""

from __future__ import annotations

from spbench.errors import SpbenchError
from spbench.metrics.evaluate import ScoringContext
from spbench.metrics.fid import FidEvaluator
from spbench.metrics.fid_inception import load_extractor
from spbench.metrics.fid_reference import REFERENCE_TO_CANVAS, reference_moments


def fid_settings(ctx: ScoringContext) -> dict:
    ev = ctx.config.get("evaluation", {})
    return {"resize": ctx.overrides.get("fid_resize") or ev.get("fid_resize") or "antialias",
            "batch_size": int(ev.get("fid_batch_size") or 32)}


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def score_fid(ctx: ScoringContext, rows: list[dict], progress=None) -> FidEvaluator:
    """Features of this process's generated images; the main process adds the reference statistics."""
    settings = fid_settings(ctx)
    spec = ctx.config["models"].get("inception")
    extractor = load_extractor(spec, settings["resize"], ctx.device)
    evaluator = FidEvaluator(extractor.name, extractor.num_features)
    evaluator.description = {
        "model": spec, "features": extractor.num_features, "weights": extractor.weights,
        "generated_images": "as written (canvas size)",
        "reference_images": f"the split's real images brought to the canvas by {REFERENCE_TO_CANVAS}",
        "resize": f"{extractor.resize}, inside the extractor, uint8 input",
        "spread": "mean and sample std (ddof=1) of FID over k",
    }
    for batch, images in ctx.scored_batches(rows, settings["batch_size"], progress, "scoring FID"):
        for r, im in zip(batch, images):
            w, h = r["canvas"]["width"], r["canvas"]["height"]
            if im.size != (w, h):
                raise SpbenchError(f"{r['file']}: image is {im.size[0]}x{im.size[1]} but its canvas is {w}x{h}; "
                                   "FID compares images in the canvas frame")
        evaluator.update([(r["sample_id"], r["k"]) for r in batch], extractor(images))
    if _is_main_process():
        moments, ref_settings, path, reused = reference_moments(ctx, extractor, settings["batch_size"], progress)
        evaluator.set_reference(moments, ref_settings)
        evaluator.description["reference_cache"] = f"{path} ({'reused' if reused else 'written'})"
    return evaluator
