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
PROTOCOLS = ("all", "official")

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


def scoring_function(name: str):
    if name not in METRICS:
        raise SpbenchError(f"unknown metric {name!r} (known: {', '.join(METRICS)})")
    module, _, attr = METRICS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def batches(rows: list[dict], size: int):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def score_pose(ctx: ScoringContext, rows: list[dict], progress=None):
    """Pose OKS-mAP: the pose model runs top-down on the GT boxes mapped to the canvas."""
    from spbench.metrics.pose import PoseEvaluator
    from spbench.metrics.pose_models import load_pose_model

    override = ctx.overrides.get("pose_model")
    spec = override or ctx.config["models"]["pose"]
    index = None if override else ctx.config["models"]["pose_dataset_index"]
    protocol = ctx.overrides.get("protocol") or "all"
    if protocol == "official":
        # The official AP-10K evaluation scores only the first of the three images per prompt.
        rows = [r for r in rows if r["k"] == 0]
    schema = get_schema(next(iter(ctx.samples.values())).schema)
    evaluator = PoseEvaluator(schema)
    evaluator.description = {"model": spec, "dataset_index": index, "frame": "canvas",
                             "boxes": "ground truth, mapped to the canvas", "protocol": protocol,
                             "images": "k = 0 only" if protocol == "official" else "every k",
                             "spread": "mean and sample std (ddof=1) of AP over k"}
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
