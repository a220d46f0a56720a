"""The SP-Ctrl spatial-pose index map, and a colour view of it for grids.

The index map is what the official code renders once per sample: keypoint k has value
``KEYPOINT_INDEX_OFFSET + k`` (1..17), limb j value ``LIMB_INDEX_OFFSET + j`` (AP-10K 51..67;
COCO-17 51..69, as the official Human-Art maps), 0 is background. A schema file with more than
50 keypoints puts its limbs right after them (``schema.limb_index_offset``: K + 1 + j). The SPR module later looks an
embedding up per pixel from these values, so the map must be resized with NEAREST only (values are
labels, not intensities).
"""

from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np

from spbench.canvas import CanvasTransform
from spbench.conditions.drawing import draw_pose
from spbench.data.records import Sample
from spbench.schemas import KEYPOINT_INDEX_OFFSET, LIMB_INDEX_OFFSET, get_schema


def render_index_map(
    sample: Sample, transform: CanvasTransform, stick_width: int = 4, radius: int = 4
) -> np.ndarray:
    """Render the sample's poses as an index map: uint8 [H, W].

    Every limb of ``schema.index_map_limbs`` is drawn (AP-10K 17; COCO-17 all 19, values 68 and 69
    included: the official Human-Art maps hold them, though the SPR embeds only 51..67). Geometry and
    rounding are those of :mod:`spbench.conditions.drawing` (the OpenPose ellipse and circle,
    coordinates truncated with ``int()``); limbs first, then keypoints, per instance in order.
    """
    schema = get_schema(sample.schema)
    canvas = np.zeros((transform.height, transform.width), dtype=np.uint8)
    limb_offset = schema.limb_index_offset  # 51 up to 50 keypoints (LIMB_INDEX_OFFSET), K + 1 above
    return draw_pose(
        canvas,
        sample,
        transform,
        schema.index_map_limbs,
        lambda j: limb_offset + j,
        lambda k: KEYPOINT_INDEX_OFFSET + k,
        stick_width,
        radius,
    )


@lru_cache(maxsize=1)
def _index_palette() -> np.ndarray:
    """[256, 3] colour per index value: 0 black, neighbours far apart in hue (golden-ratio steps);
    keypoints bright, limbs dimmer, so the two kinds read apart at a glance."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    for v in range(1, 256):
        hue = (v * 0.618033988749895) % 1.0
        value = 1.0 if v < LIMB_INDEX_OFFSET else 0.65
        lut[v] = [round(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.85, value)]
    return lut


def index_map_to_rgb(index_map: np.ndarray) -> np.ndarray:
    """Visualise an index map: uint8 [H, W, 3] RGB, one distinct colour per value, 0 black."""
    return _index_palette()[np.asarray(index_map, dtype=np.uint8)]
