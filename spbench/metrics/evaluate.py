"""Scoring a run folder: one scoring function per metric, looked up by name.

Each scoring function takes a :class:`ScoringContext` and this process's share of the manifest
rows, runs its model over the images, and returns a filled :class:`~spbench.metrics.base.Evaluator`
(which the harness syncs across ranks and computes). New metrics declare a
:class:`~spbench.metrics.spec.MetricSpec` in ``METRIC_SPECS``, which fills ``METRICS``.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from spbench.canvas import CanvasTransform
from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.metrics.spec import METRIC_SPECS
from spbench.registry import Registry, did_you_mean
from spbench.run.folder import RunFolder

# Image-decoding threads for scoring (decoding is host work a GPU waits for).
DECODE_THREADS = min(4, os.cpu_count() or 1)

# Pose-scoring protocols (README "Fidelity"); "all" is the old name of "canvas". "humansd" scores
# HumanSD's metrics in place of pose, fid and clip, "stable-pose" Stable-Pose's version of them
# (spbench.metrics.humansd_protocol).
PROTOCOLS = ("official", "canvas", "humansd", "stable-pose")
PROTOCOL_ALIASES = {"all": "canvas"}

# name -> scoring function ("module:function" of its spec, spbench.metrics.spec), imported
# only when the metric is asked for.
METRICS: Registry = Registry("metric", callable_=True, unknown="unknown metric {name!r} (known: {known})")
for _spec in METRIC_SPECS.values():
    METRICS.register(_spec.name, _spec.scorer)


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

    def reference_image(self, sample: Sample, needed_by: str) -> Image.Image:
        """That image in RGB; an unreadable file is a one-line error saying what ``needed_by`` it."""
        path = self.reference_image_path(sample)
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except OSError as e:
            raise SpbenchError(f"{needed_by} the dataset's real images: cannot read {path} ({type(e).__name__}: {e}); "
                               "check the dataset's data root") from None

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

    def scored_batches(self, rows: list[dict], size: int, progress=None, label: str = "scoring"):
        """:meth:`image_batches`, with a ``progress`` task ``label`` advanced as each batch is scored."""
        task = progress.add_task(label, total=len(rows)) if progress else None
        for chunk, images in self.image_batches(rows, size):
            yield chunk, images
            if progress:
                progress.advance(task, len(chunk))

    def score_on_canvas(self, model, evaluator, rows: list[dict], size: int, progress=None, label: str = "scoring"):
        """Predict on the rows' images in the canvas frame (``model.predict(images, samples,
        transforms)``) and record each image's prediction (``evaluator.update(sample, transform,
        k, prediction)``); returns the evaluator."""
        for chunk, images in self.scored_batches(rows, size, progress, label):
            samples = [self.samples[r["sample_id"]] for r in chunk]
            transforms = [CanvasTransform(**r["canvas"]) for r in chunk]
            predictions = model.predict(images, samples, transforms)
            for r, s, t, p in zip(chunk, samples, transforms, predictions, strict=True):
                evaluator.update(s, t, r["k"], p)
        return evaluator


def resolve_protocol(override: str | None, config: dict) -> str:
    """The pose protocol of an evaluation: ``--protocol`` if given, else the run's recorded
    ``evaluation.protocol`` (runs made before it was recorded used the canvas protocol)."""
    name = override or config.get("evaluation", {}).get("protocol") or "canvas"
    name = PROTOCOL_ALIASES.get(name, name)
    if name not in PROTOCOLS:
        hint = did_you_mean(name, PROTOCOLS)
        raise SpbenchError(f"unknown protocol {name!r} (--protocol or evaluation.protocol): {hint}use {' or '.join(PROTOCOLS)}")
    return name


def scoring_function(name: str):
    return METRICS.load(name)


def batches(rows: list[dict], size: int):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
