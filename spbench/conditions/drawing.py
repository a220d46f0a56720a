"""Pose drawing shared by the OpenPose and spatial-pose renderers: one geometry, two colourings.

Geometry follows the official SP-Ctrl / ControlNet OpenPose drawing, so an index map or OpenPose
image drawn here matches one drawn by the official scripts (at the same resolution):

- a limb is a filled ``cv2.ellipse2Poly`` polygon centred at the limb midpoint, half-axes
  ``(int(length / 2), stick_width)``, rotated by ``int(degrees(atan2(dy, dx)))``, 1-degree steps;
- a keypoint is a filled ``cv2.circle`` of the given radius.

Rounding: every coordinate is truncated with ``int()`` (toward zero), as the official code does,
i.e. the midpoint ``int((x1 + x2) / 2)``, the centre ``int(x)``; for on-canvas points (x >= 0)
this is ``floor``. A point lands on pixel (row=int(y), col=int(x)).

Drawing order: instance by instance (in the sample's order); within an instance all limbs (in
skeleton order), then all keypoints on top. Later instances overwrite earlier ones, as in the
official scripts, which call their draw function once per annotation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import cv2
import numpy as np

from spbench.canvas import CanvasTransform
from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.schemas import get_schema

# A colour is an int (single-channel canvas) or a tuple of ints (one per channel).
Color = int | tuple[int, ...]


def canvas_instances(
    sample: Sample, transform: CanvasTransform
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per instance, in order: canvas (x, y) [K, 2] and a drawable mask [K] (v > 0, finite)."""
    schema = get_schema(sample.schema)
    for n, inst in enumerate(sample.instances):
        if len(inst.keypoints) != schema.num_keypoints:
            raise SpbenchError(
                f"sample {sample.sample_id}: instance {n} has {len(inst.keypoints)} keypoints but "
                f"schema {schema.name!r} has {schema.num_keypoints}; fix the annotation reader"
            )
        xy = transform.points(inst.xy)
        drawable = (inst.visibility > 0) & np.isfinite(xy).all(axis=1)
        yield xy, drawable


def draw_limb(
    canvas: np.ndarray, p: Sequence[float], q: Sequence[float], stick_width: int, color: Color
) -> None:
    """Fill the OpenPose ellipse between canvas points p and q (in place)."""
    (x1, y1), (x2, y2) = p, q
    centre = (int((x1 + x2) / 2), int((y1 + y2) / 2))
    half_length = int(math.hypot(x2 - x1, y2 - y1) / 2)
    angle = int(math.degrees(math.atan2(y1 - y2, x1 - x2)))
    polygon = cv2.ellipse2Poly(centre, (half_length, int(stick_width)), angle, 0, 360, 1)
    cv2.fillConvexPoly(canvas, polygon, color)


def draw_keypoint(canvas: np.ndarray, p: Sequence[float], radius: int, color: Color) -> None:
    """Fill a circle at canvas point p (in place)."""
    cv2.circle(canvas, (int(p[0]), int(p[1])), int(radius), color, thickness=-1)


def draw_pose(
    canvas: np.ndarray,
    sample: Sample,
    transform: CanvasTransform,
    limbs: Sequence[tuple[int, int]],
    limb_color: Callable[[int], Color],
    keypoint_color: Callable[[int], Color],
    stick_width: int,
    radius: int,
) -> np.ndarray:
    """Draw every instance of the sample on the canvas (in place) and return it.

    ``limb_color(j)`` colours limb j of ``limbs``; ``keypoint_color(k)`` colours keypoint k. A limb
    is drawn only when both its keypoints are drawable.
    """
    for xy, drawable in canvas_instances(sample, transform):
        for j, (a, b) in enumerate(limbs):
            if drawable[a] and drawable[b]:
                draw_limb(canvas, xy[a], xy[b], stick_width, limb_color(j))
        for k in np.flatnonzero(drawable):
            draw_keypoint(canvas, xy[k], radius, keypoint_color(int(k)))
    return canvas
