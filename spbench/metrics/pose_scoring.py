"""Scoring a run's images with Pose OKS-mAP, under the run's protocol: ``canvas`` (ground truth
mapped to the canvas, every k) or ``official`` (:mod:`spbench.metrics.pose_official`: scored k
only, images resized back to the original size, predicted and scored in the original frame)."""

from __future__ import annotations

from PIL import Image

from spbench.canvas import CanvasTransform
from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.metrics.evaluate import ScoringContext
from spbench.metrics.pose import PoseEvaluator
from spbench.metrics.pose_models import load_pose_model
# The official steps are looked up on their module when scoring, so a check that patches one of
# them (tests/test_ci_baseline.py) is seen here.
from spbench.metrics import pose_official as official
from spbench.schemas import get_schema


def score_pose(ctx: ScoringContext, rows: list[dict], progress=None) -> PoseEvaluator:
    """Pose OKS-mAP of the run's protocol: ``canvas`` (GT mapped to the canvas, every k) or
    ``official`` (:mod:`spbench.metrics.pose_official`)."""
    override = ctx.overrides.get("pose_model")
    spec = override or ctx.config["models"]["pose"]
    index = None if override else ctx.config["models"]["pose_dataset_index"]
    protocol = ctx.overrides["protocol"]
    schema = get_schema(next(iter(ctx.samples.values())).schema)
    if protocol == "official":
        return _score_pose_official(ctx, rows, progress, schema, spec, index)
    evaluator = PoseEvaluator(schema)
    evaluator.description = {"model": spec, "dataset_index": index, "protocol": protocol, "frame": "canvas",
                             "boxes": "ground truth, mapped to the canvas",
                             "decoding": "transformers VitPoseImageProcessor: UDP crop, DARK decoding (kernel 11); flip test, no shift",
                             "nms": "none", "ignored_gt": "instances without a labelled keypoint dropped with their prediction",
                             "images": "every k", "spread": "mean and sample std (ddof=1) of AP over k"}
    if not rows:
        return evaluator
    model = load_pose_model(spec, dataset_index=index, device=ctx.device, num_keypoints=schema.num_keypoints)
    return ctx.score_on_canvas(model, evaluator, rows, ctx.config["evaluation"]["pose_batch_size"], progress,
                               "scoring pose")


def _score_pose_official(ctx: ScoringContext, rows: list[dict], progress, schema, spec, index) -> PoseEvaluator:
    """Official protocol: scored k only, images resized back to the original size, predicted and
    scored in the original frame (crop, decoding, OKS-NMS as the official configs)."""
    settings = official.official_settings(schema.name)
    rows = [r for r in rows if r["k"] in settings.scored_k]
    # The official Real Image row scores the dataset images themselves (test.py copies them from
    # the raw split), not a canvas round trip: so does any method whose images are the dataset's.
    from spbench.methods.registry import declared

    real = declared(ctx.run_info.get("method", {}).get("name"), "returns_dataset_images", False)
    evaluator = PoseEvaluator(schema, official=settings)
    flip = "flip test, flipped heatmaps shifted one column right" if settings.flip_shift else "flip test, no shift"
    evaluator.description = {
        "model": spec, "dataset_index": index, "protocol": "official", "source": settings.source,
        "frame": "original image (the dataset image itself)" if real else
                 "original image (generated image resized to it with PIL bilinear)",
        "boxes": f"ground truth, cleaned ({settings.box_rule}), padding {settings.padding}, aspect "
                 f"{settings.input_size[0]}/{settings.input_size[1]}, {'UDP' if settings.udp else 'mmpose 0.x'} crop",
        "decoding": f"{settings.decoding}; {flip}",
        "nms": f"OKS-NMS at {settings.nms_thr} (crop-window areas); score = mean keypoint score above "
               f"{settings.vis_thr} x box score 1",
        "ignored_gt": "instances without a labelled keypoint kept as ignored ground truth, not predicted",
        "images": f"k in {list(settings.scored_k)} only ({settings.k_source})",
        "spread": "mean and sample std (ddof=1) of AP over k",
    }
    if not rows:
        return evaluator
    model = load_pose_model(spec, dataset_index=index, device=ctx.device, num_keypoints=schema.num_keypoints)
    for batch, images in ctx.scored_batches(rows, ctx.config["evaluation"]["pose_batch_size"], progress, "scoring pose"):
        for r in batch:
            if r["canvas"].get("mode", "stretch") != "stretch":
                raise SpbenchError(f"the official pose protocol resizes stretched canvases back; image "
                                   f"{r['file']} uses canvas mode {r['canvas']['mode']!r}: use --protocol canvas")
        # The original image frame: annotations as they are, images resized back to their size.
        samples = [official.in_frame(ctx.samples[r["sample_id"]],
                                     official.scoring_frame(ctx.samples[r["sample_id"]], r["canvas"])) for r in batch]
        originals = [_dataset_image(ctx, s) if real else official.to_original_size(im, s) for im, s in zip(images, samples)]
        crop_boxes = [official.sample_boxes(s, settings) for s in samples]
        predictions = model.predict_boxes(originals, samples, crop_boxes, settings)
        for r, s, b, p in zip(batch, samples, crop_boxes, predictions, strict=True):
            identity = CanvasTransform(s.width, s.height, 1.0, 1.0)
            evaluator.update(s, identity, r["k"], p, b)
    return evaluator


def _dataset_image(ctx: ScoringContext, sample: Sample) -> Image.Image:
    return ctx.reference_image(sample, "the official protocol scores the Real Image row on")
