"""The RGB OpenPose condition image (ControlNet's convention), drawn on the canvas."""

from __future__ import annotations

import numpy as np

from spbench.canvas import CanvasTransform
from spbench.conditions.drawing import draw_pose
from spbench.data.records import Sample
from spbench.schemas import get_schema

# The 18 standard OpenPose colours (RGB); limb j and keypoint k use entry j / k.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
# Limbs are drawn dimmer than keypoints so the joints stand out.
LIMB_INTENSITY = 0.6


def limb_color(j: int) -> tuple[int, int, int]:
    """Colour of limb j: ``int(c * 0.6)`` per channel (truncated, as ControlNet's drawing)."""
    return tuple(int(float(c) * LIMB_INTENSITY) for c in PALETTE[j % len(PALETTE)])


def keypoint_color(k: int) -> tuple[int, int, int]:
    return PALETTE[k % len(PALETTE)]


def render_openpose(
    sample: Sample, transform: CanvasTransform, stick_width: int = 4, radius: int = 4
) -> np.ndarray:
    """Render the sample's poses as an OpenPose image: uint8 [H, W, 3], RGB, black background.

    The limbs of the schema's skeleton that have a palette colour are drawn (AP-10K: all 17;
    COCO-17: the first 18, not the 19th, right_ear-right_shoulder), then the keypoints, per instance
    in order. Geometry and rounding (coordinates truncated with ``int()``) are those of
    :mod:`spbench.conditions.drawing`; keypoints with v == 0 and limbs touching them are skipped.
    A schema file's skeleton is drawn whole, in its own ``limb_colors`` / ``keypoint_colors`` when
    it gives them (limbs at 60 % as here), else in the palette's colours, cycled past 18.
    """
    schema = get_schema(sample.schema)
    canvas = np.zeros((transform.height, transform.width, 3), dtype=np.uint8)
    if schema.from_file:
        limb_of, keypoint_of = schema_colors(schema)
        return draw_pose(canvas, sample, transform, schema.skeleton, limb_of, keypoint_of, stick_width, radius)
    # The official drawing zips the limbs with the 18 colours, so a 19th limb is never drawn.
    limbs = schema.skeleton[: len(PALETTE)]
    return draw_pose(canvas, sample, transform, limbs, limb_color, keypoint_color, stick_width, radius)


def schema_colors(schema):
    """(limb j -> RGB, keypoint k -> RGB) of a schema file: its own colours (limbs dimmed to 60 %
    with ``int()``, as :func:`limb_color`), else the palette's (``limb_color`` / ``keypoint_color``)."""
    if schema.limb_colors is not None:
        limbs = schema.limb_colors
        limb_of = lambda j: tuple(int(float(c) * LIMB_INTENSITY) for c in limbs[j])  # noqa: E731
    else:
        limb_of = limb_color
    keypoint_of = (lambda k: tuple(schema.keypoint_colors[k])) if schema.keypoint_colors is not None else keypoint_color
    return limb_of, keypoint_of
