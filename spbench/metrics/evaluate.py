"""Scoring a run folder: one scoring function per metric, looked up by name.

Each scoring function takes a :class:`ScoringContext` and this process's share of the manifest
rows, runs its model over the images, and returns a filled :class:`~spbench.metrics.base.Evaluator`
(which the harness syncs across ranks and computes). New metrics register in ``METRICS``.
"""

from __future__ import annotations

import importlib
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from spbench.canvas import CanvasTransform
from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.generation.run_folder import RunFolder
from spbench.schemas import get_schema

# Image-decoding threads for scoring (decoding is host work a GPU waits for).
DECODE_THREADS = min(4, os.cpu_count() or 1)

# name -> "module:function"; imported only when the metric is asked for.
# Pose-scoring protocols (README "Fidelity"); "all" is the old name of "canvas".
PROTOCOLS = ("official", "canvas")
PROTOCOL_ALIASES = {"all": "canvas"}

METRICS: dict[str, str] = {
    "pose": "spbench.metrics.evaluate:score_pose",
    "clip": "spbench.metrics.clip_score:score_clip",
    "fid": "spbench.metrics.fid:score_fid",
    "det": "spbench.metrics.detection:score_detection",
}


@dataclass
class ScoringContext:
    run: RunFolder
    run_info: dict  # run.json
    samples: dict[str, Sample]
    device: str = "cpu"
    # Command-line choices that override the recorded config: pose_model, protocol.
    overrides: dict = field(default_factory=dict)

    @property
    def config(self) -> dict:
        return self.run_info["config"]

    def reference_image_path(self, sample: Sample) -> Path:
        """The dataset's real image of ``sample`` (for FID and the Real Image row)."""
        return Path(self.run_info["dataset"]["data_root"]) / sample.file

    def load_image(self, row: dict) -> Image.Image:
        with Image.open(self.run.path / row["file"]) as image:
            return image.convert("RGB")

    def load_images(self, rows: list[dict]) -> list[Image.Image]:
        return [self.load_image(r) for r in rows]

    def image_batches(self, rows: list[dict], size: int, ahead: int = 2):
        """``(batch, images)`` for consecutive batches of ``rows``, decoded by a few threads while
        the caller scores: the next ``ahead`` batches are in flight. Decoding a 512x512 PNG is
        milliseconds of host time a fast GPU would otherwise wait for (BENCHMARKS.md, "Decoding on
        threads"); Pillow releases the GIL while it decodes. An unreadable image raises its own
        error, at its batch."""
        chunks = list(batches(rows, size))
        with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="spbench-decode") as pool:
            pending: deque = deque()
            try:
                for i, chunk in enumerate(chunks):
                    while len(pending) <= ahead and i + len(pending) < len(chunks):
                        pending.append([pool.submit(self.load_image, r) for r in chunks[i + len(pending)]])
                    yield chunk, [f.result() for f in pending.popleft()]
            finally:  # on an error or an early stop, do not decode what nobody will read
                for futures in pending:
                    for f in futures:
                        f.cancel()


def resolve_protocol(override: str | None, config: dict) -> str:
    """The pose protocol of an evaluation: ``--protocol`` if given, else the run's recorded
    ``evaluation.protocol`` (runs made before it was recorded used the canvas protocol)."""
    name = override or config.get("evaluation", {}).get("protocol") or "canvas"
    name = PROTOCOL_ALIASES.get(name, name)
    if name not in PROTOCOLS:
        import difflib

        close = difflib.get_close_matches(name, PROTOCOLS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SpbenchError(f"unknown protocol {name!r} (--protocol or evaluation.protocol): {hint}use {' or '.join(PROTOCOLS)}")
    return name


def scoring_function(name: str):
    if name not in METRICS:
        raise SpbenchError(f"unknown metric {name!r} (known: {', '.join(METRICS)})")
    module, _, attr = METRICS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def batches(rows: list[dict], size: int):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def score_pose(ctx: ScoringContext, rows: list[dict], progress=None):
    """Pose OKS-mAP of the run's protocol: ``canvas`` (GT mapped to the canvas, every k) or
    ``official`` (:mod:`spbench.metrics.pose_official`)."""
    from spbench.metrics.pose import PoseEvaluator
    from spbench.metrics.pose_models import load_pose_model

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
    model = load_pose_model(spec, dataset_index=index, device=ctx.device)
    task = progress.add_task("scoring pose", total=len(rows)) if progress else None
    for batch, images in ctx.image_batches(rows, ctx.config["evaluation"]["pose_batch_size"]):
        samples = [ctx.samples[r["sample_id"]] for r in batch]
        transforms = [CanvasTransform(**r["canvas"]) for r in batch]
        predictions = model.predict(images, samples, transforms)
        for r, s, t, p in zip(batch, samples, transforms, predictions, strict=True):
            evaluator.update(s, t, r["k"], p)
        if progress:
            progress.advance(task, len(batch))
    return evaluator


def _score_pose_official(ctx: ScoringContext, rows: list[dict], progress, schema, spec, index):
    """Official protocol: scored k only, images resized back to the original size, predicted and
    scored in the original frame (crop, decoding, OKS-NMS as the official configs)."""
    from spbench.metrics.pose import PoseEvaluator
    from spbench.metrics.pose_models import load_pose_model
    from spbench.metrics.pose_official import in_frame, official_settings, sample_boxes, scoring_frame, to_original_size

    settings = official_settings(schema.name)
    rows = [r for r in rows if r["k"] in settings.scored_k]
    # The official Real Image row scores the dataset images themselves (test.py copies them from
    # the raw split), not a canvas round trip.
    real = ctx.run_info.get("method", {}).get("name") == "real"
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
    model = load_pose_model(spec, dataset_index=index, device=ctx.device)
    task = progress.add_task("scoring pose", total=len(rows)) if progress else None
    for batch, images in ctx.image_batches(rows, ctx.config["evaluation"]["pose_batch_size"]):
        for r in batch:
            if r["canvas"].get("mode", "stretch") != "stretch":
                raise SpbenchError(f"the official pose protocol resizes stretched canvases back; image "
                                   f"{r['file']} uses canvas mode {r['canvas']['mode']!r}: use --protocol canvas")
        # The original image frame: annotations as they are, images resized back to their size.
        samples = [in_frame(ctx.samples[r["sample_id"]], scoring_frame(ctx.samples[r["sample_id"]], r["canvas"]))
                   for r in batch]
        originals = [_dataset_image(ctx, s) if real else to_original_size(im, s) for im, s in zip(images, samples)]
        boxes = [sample_boxes(s, settings) for s in samples]
        predictions = model.predict_boxes(originals, samples, boxes, settings)
        for r, s, b, p in zip(batch, samples, boxes, predictions, strict=True):
            identity = CanvasTransform(s.width, s.height, 1.0, 1.0)
            evaluator.update(s, identity, r["k"], p, b)
        if progress:
            progress.advance(task, len(batch))
    return evaluator


def _dataset_image(ctx: ScoringContext, sample: Sample) -> Image.Image:
    path = ctx.reference_image_path(sample)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as e:
        raise SpbenchError(f"the official protocol scores the Real Image row on the dataset images; "
                           f"cannot read {path}: {e}") from None
