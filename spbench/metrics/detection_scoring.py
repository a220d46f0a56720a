"""Scoring a run's images with Detection AP.75 (:mod:`spbench.metrics.detection`): the detector of
``models.detector`` (:mod:`spbench.metrics.detection_models`) on every generated image, prompted
per category of its sample."""

from __future__ import annotations

from spbench.errors import SpbenchError
from spbench.metrics.detection import DetectionEvaluator
from spbench.metrics.detection_models import MAX_DETECTIONS, load_detector
from spbench.metrics.model_specs import is_diagnostic_model
from spbench.metrics.evaluate import ScoringContext


def detection_settings(ctx: ScoringContext) -> dict:
    ev = ctx.config.get("evaluation", {})
    threshold = ev.get("det_box_threshold")
    return {"box_threshold": float(0.0 if threshold is None else threshold),
            "batch_size": int(ev.get("det_batch_size") or 8)}


def score_detection(ctx: ScoringContext, rows: list[dict], progress=None) -> DetectionEvaluator:
    """Grounding-DINO on every generated image, prompted per category of its sample."""
    settings = detection_settings(ctx)
    if not 0.0 <= settings["box_threshold"] < 1.0:
        raise SpbenchError(f"evaluation.det_box_threshold must be in [0, 1), got {settings['box_threshold']}")
    spec = ctx.config["models"].get("detector")
    diagnostic = is_diagnostic_model(spec)
    evaluator = DetectionEvaluator(diagnostic=diagnostic)
    evaluator.description = {
        "model": spec, "prompt": "per category of the sample's instances with a labelled keypoint: '<name>.' (lower case)",
        "frame": "canvas", "boxes": "ground truth of the instances with a labelled keypoint, mapped to the canvas",
        "score": "max sigmoid over the prompt's tokens (as post_process_grounded_object_detection)",
        "box_threshold": settings["box_threshold"],
        "max_detections": f"{MAX_DETECTIONS} per image and category (COCOeval maxDets)",
        "evaluation": "pycocotools COCOeval bbox, per-category AP averaged; headline AP.75",
        "spread": "mean and sample std (ddof=1) of AP75 over k",
    }
    if diagnostic:
        evaluator.description["diagnostic"] = True
    if not rows:
        return evaluator
    detector = load_detector(spec, device=ctx.device, **({} if diagnostic else settings))
    return ctx.score_on_canvas(detector, evaluator, rows, settings["batch_size"], progress, "scoring detection")
