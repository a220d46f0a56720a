"""A sample-by-condition grid for eyeballing renderings (images brought to the canvas by
:func:`spbench.canvas.image_to_canvas`).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from spbench.canvas import CanvasTransform, image_to_canvas
from spbench.conditions.heatmaps import render_heatmaps
from spbench.conditions.openpose import render_openpose
from spbench.conditions.spatial_pose import index_map_to_rgb, render_index_map
from spbench.data.records import Sample
from spbench.errors import SpbenchError

COLUMNS = ("image", "openpose", "spatial-pose", "heatmaps")


def heatmap_tile(sample: Sample, transform: CanvasTransform, heatmap_size: int = 64) -> np.ndarray:
    """Max over keypoints of the heatmaps, clipped to [0, 1], upscaled to the canvas and
    colour-mapped (inferno): uint8 [H, W, 3] RGB."""
    peak = render_heatmaps(sample, transform, size=heatmap_size).max(axis=0, initial=0.0)
    # Map heatmap pixel j (centre at heatmap coordinate j) onto canvas coordinate j * W / size, the
    # inverse of how keypoints were scaled down, so peaks sit on the drawn keypoints.
    m = np.array([[transform.width / heatmap_size, 0, 0], [0, transform.height / heatmap_size, 0]])
    up = cv2.warpAffine(
        np.clip(peak, 0.0, 1.0), m, (transform.width, transform.height),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
    )
    gray = np.round(up * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def condition_grid(
    rows: Sequence[tuple[Sample, CanvasTransform, Image.Image | None]], heatmap_size: int = 64
) -> Image.Image:
    """One row per sample: reference image on the canvas, OpenPose, index map, heatmaps.

    Every tile is canvas-sized; column names label the first row and each row's image tile
    carries its sample id. A missing reference image gives a grey tile.
    """
    if not rows:
        raise SpbenchError("condition_grid: no samples to show; pass at least one row")
    tile_w = max(t.width for _, t, _ in rows)
    grid = Image.new("RGB", (tile_w * len(COLUMNS), sum(t.height for _, t, _ in rows)))
    draw = ImageDraw.Draw(grid)
    font = _font(min(t.height for _, t, _ in rows))
    y = 0
    for r, (sample, transform, image) in enumerate(rows):
        if image is None:
            first = Image.new("RGB", (transform.width, transform.height), (64, 64, 64))
        else:
            first = image_to_canvas(image, transform)
        tiles = [
            first,
            Image.fromarray(render_openpose(sample, transform)),
            Image.fromarray(index_map_to_rgb(render_index_map(sample, transform))),
            Image.fromarray(heatmap_tile(sample, transform, heatmap_size)),
        ]
        for c, tile in enumerate(tiles):
            grid.paste(tile, (c * tile_w, y))
            if r == 0:
                _label(draw, (c * tile_w + 2, y + 2), COLUMNS[c], font)
        label = sample.sample_id + ("" if image is not None else " (no image)")
        _label(draw, (2, y + transform.height - _text_height(draw, label, font) - 6), label, font)
        y += transform.height
    return grid


def _font(tile_height: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    size = max(8, tile_height // 24)
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _text_height(draw: ImageDraw.ImageDraw, text: str, font) -> int:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return bottom - top


def _label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, font) -> None:
    """White text on a black box, readable over any tile."""
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=(0, 0, 0))
    draw.text(xy, text, fill=(255, 255, 255), font=font)
