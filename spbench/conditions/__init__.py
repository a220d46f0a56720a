"""Condition rendering: pure functions of a sample and a canvas transform.

``render_condition(kind, sample, transform, mode)`` gives the image a method is conditioned on,
drawn on the canvas (``mode="native"``) or as the official SP-Ctrl inference draws it: at the
original size, then resized (``mode="official"``, :mod:`spbench.conditions.official`). The array
renderers are exported for training code (index map, heatmap targets).
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from spbench.canvas import CanvasTransform, image_to_canvas
from spbench.conditions.grid import condition_grid
from spbench.conditions.heatmaps import render_heatmaps
from spbench.conditions.official import RENDER_MODES, check_render_mode, render_official
from spbench.conditions.openpose import render_openpose
from spbench.conditions.openpose18 import OFFICIAL_RENDERERS as OPENPOSE18_OFFICIAL
from spbench.conditions.spatial_pose import index_map_to_rgb, render_index_map
from spbench.data.records import Sample
from spbench.registry import Registry


def _openpose_image(sample: Sample, transform: CanvasTransform) -> Image.Image:
    return Image.fromarray(render_openpose(sample, transform))  # uint8 [H, W, 3] -> RGB


def _index_map_image(sample: Sample, transform: CanvasTransform) -> Image.Image:
    # Mode "L" keeps the raw index values; resize it only with Image.NEAREST.
    return Image.fromarray(render_index_map(sample, transform))  # uint8 [H, W] -> L


# Condition kind -> renderer of the canvas-sized condition image.
CONDITIONS: Registry[Callable[[Sample, CanvasTransform], Image.Image]] = Registry(
    "condition kind", callable_=True, unknown="unknown condition kind {name!r}; {hint}known: {known}"
)
CONDITIONS.register("openpose", _openpose_image)
CONDITIONS.register("spatial-pose", _index_map_image)
# OpenPose-18 as the public OpenPose checkpoints were trained (spbench.conditions.openpose18).
CONDITIONS.register("openpose18", "spbench.conditions.openpose18:openpose18_image")
CONDITIONS.register("openpose18-blend", "spbench.conditions.openpose18:openpose18_blend_image")


def render_condition(
    kind: str, sample: Sample, transform: CanvasTransform, mode: str = "native"
) -> Image.Image:
    """The condition image of one kind on the canvas: "openpose" (RGB) or "spatial-pose" (mode "L"
    index map). ``mode`` (generation.condition_render): "native" draws on the canvas; "official"
    draws at the original size and resizes (index map: torch nearest; OpenPose: PIL bilinear).
    "openpose18" / "openpose18-blend" (RGB): official draws at the annotator's size, then PIL
    LANCZOS as diffusers resizes a control image (:mod:`spbench.conditions.openpose18`)."""
    check_render_mode(mode)
    render = CONDITIONS.load(kind)
    if mode == "official":
        if kind in OPENPOSE18_OFFICIAL:  # drawn at the annotator's size, resized as diffusers does
            return OPENPOSE18_OFFICIAL[kind](sample, transform)
        return render_official(kind, render, sample, transform)
    return render(sample, transform)


__all__ = [
    "CONDITIONS",
    "RENDER_MODES",
    "condition_grid",
    "image_to_canvas",
    "index_map_to_rgb",
    "render_condition",
    "render_heatmaps",
    "render_index_map",
    "render_openpose",
]
