"""`spbench data show`: the conditions of a dataset split's first samples, drawn as one PNG grid."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from spbench.canvas import CanvasTransform
from spbench.conditions.grid import condition_grid
from spbench.data.registry import check_image_files, load_split
from spbench.files import atomic_save_image


def show_split(out: str | Path, dataset: str, split: str | None = None, data_root: str | None = None,
               ann: str | None = None, limit: int = 4, canvas: int = 512, canvas_mode: str = "stretch",
               schema: str | None = None) -> int:
    """Write to ``out`` a grid of the first ``limit`` samples (image | OpenPose | spatial-pose
    index map | heatmaps, on a ``canvas``-pixel canvas); returns the number of rows."""
    s = load_split(dataset, split, data_root, ann, schema=schema).limit(limit)
    check_image_files(s, ann)
    rows = []
    for sample in s.samples:
        transform = CanvasTransform.fit(sample.width, sample.height, canvas, canvas_mode)
        with Image.open(s.image_path(sample)) as im:
            rows.append((sample, transform, im.convert("RGB")))
    atomic_save_image(out, condition_grid(rows))
    return len(rows)
