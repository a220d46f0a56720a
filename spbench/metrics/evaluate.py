"""Scoring the images of a run folder with the pose metric (more metrics plug in the same way)."""

from __future__ import annotations

from PIL import Image

from spbench.canvas import CanvasTransform
from spbench.data.records import Sample
from spbench.generation.run_folder import RunFolder
from spbench.schemas import get_schema


def evaluate_pose(run: RunFolder, rows: list[dict], samples: dict[str, Sample], model_spec: str,
                  dataset_index: int | None, batch_size: int, device: str, progress=None):
    """Run the pose model on the listed images (top-down on GT boxes) and feed a PoseEvaluator."""
    from spbench.metrics.pose import PoseEvaluator
    from spbench.metrics.pose_models import load_pose_model

    schema = get_schema(next(iter(samples.values())).schema)
    evaluator = PoseEvaluator(schema)
    if not rows:
        return evaluator
    model = load_pose_model(model_spec, dataset_index=dataset_index, device=device)
    task = progress.add_task("scoring pose", total=len(rows)) if progress else None
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        images = [Image.open(run.path / r["file"]).convert("RGB") for r in batch]
        batch_samples = [samples[r["sample_id"]] for r in batch]
        transforms = [CanvasTransform(**r["canvas"]) for r in batch]
        predictions = model.predict(images, batch_samples, transforms)
        for r, s, t, p in zip(batch, batch_samples, transforms, predictions, strict=True):
            evaluator.update(s, t, r["k"], p)
        if progress:
            progress.advance(task, len(batch))
    return evaluator
