"""Per-keypoint Gaussian heatmaps: the targets of KCL's heatmap loss (64×64, σ = 2)."""

from __future__ import annotations

import numpy as np

from spbench.canvas import CanvasTransform
from spbench.conditions.drawing import canvas_instances
from spbench.data.records import Sample
from spbench.schemas import get_schema


def render_heatmaps(
    sample: Sample, transform: CanvasTransform, size: int = 64, sigma: float = 2.0
) -> np.ndarray:
    """Gaussian heatmap of every schema keypoint: float32 [K, size, size].

    ``H[k, i, j] = Σ_instances exp(-((j - cx)² + (i - cy)²) / (2σ²))``: pixel (row i, col j) sits
    at heatmap coordinate (x=j, y=i), i.e. at its centre with integer-centred pixels (the same
    convention as the drawn conditions). The keypoint's heatmap coordinate is its canvas
    coordinate scaled by ``size / canvas_width`` and ``size / canvas_height``; it is not rounded
    and the Gaussian is not truncated. Instances are summed and **not clamped**: where two
    instances overlap the map exceeds 1 (clamp at the loss, as the official code does). Keypoints
    with v == 0 contribute nothing; a keypoint no instance shows has an all-zero map.

    (mmpose's MSRAHeatmap codec, which the official script calls, rounds the centre to a whole
    pixel and cuts the Gaussian off beyond 3σ; on whole-pixel keypoints the two agree inside
    that window.)
    """
    schema = get_schema(sample.schema)
    heat = np.zeros((schema.num_keypoints, size, size), dtype=np.float64)
    if not sample.instances:
        return heat.astype(np.float32)
    scale = np.array([size / transform.width, size / transform.height])
    xy, drawable = zip(*canvas_instances(sample, transform))
    xy = np.stack(xy) * scale  # [I, K, 2] in heatmap pixels
    weight = np.stack(drawable).astype(np.float64)  # [I, K]
    # Skipped keypoints may hold NaN coordinates; 0 * NaN would still poison the sum.
    xy = np.where(weight[..., None] > 0, xy, 0.0)
    grid = np.arange(size, dtype=np.float64)
    # The 2-D Gaussian factorises: an outer product of one row profile and one column profile.
    gx = np.exp(-((grid - xy[..., 0:1]) ** 2) / (2 * sigma**2))  # [I, K, size] over columns
    gy = np.exp(-((grid - xy[..., 1:2]) ** 2) / (2 * sigma**2))  # [I, K, size] over rows
    heat = np.einsum("ik,iky,ikx->kyx", weight, gy, gx)
    return heat.astype(np.float32)
