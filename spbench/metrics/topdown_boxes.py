"""Ground-truth boxes -> top-down crop windows, with the official evaluations' box rules.

Two rule sets, each the one its official evaluation ran (see :mod:`spbench.metrics.pose_official`):

- ``"mmpose0"`` (AP-10K: mmpose 0.24.0 ``AnimalAP10KDataset._load_coco_keypoint_annotation_kernel``):
  x1 = max(0, x), x2 = min(W - 1, x1 + max(0, w - 1)) (same for y); the box is kept when its
  area field is > 0 and x2 > x1, y2 > y1; it becomes [x1, y1, x2 - x1, y2 - y1]. (mmpose 0.27
  changed ``w - 1`` to ``w``; ViTPose's fork is 0.24.0.)
- ``"mmpose1"`` (Human-Art: mmpose 1.x ``BaseCocoStyleDataset.parse_data_info`` and
  ``_is_valid_instance``): x1 = clip(x, 0, W - 1), x2 = clip(x + w, 0, W - 1) (same for y), in
  float32; kept when x2 - x1 > 0 and y2 - y1 > 0.

Either way an instance also needs a labelled keypoint to be predicted at all (0.x skips
``max(keypoints) == 0`` / ``num_keypoints == 0``; 1.x skips ``num_keypoints == 0`` /
``max(xy) <= 0``); its ground truth stays in the COCO file, where COCOeval ignores it.

The crop window: centre of the cleaned box, the box widened or heightened to the input's aspect
ratio w/h (192/256), then scaled by the padding 1.25 (0.x does aspect then padding, 1.x padding
then aspect: the same product). Centre and size are float32, as mmpose keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spbench.data.records import Instance
from spbench.errors import SpbenchError

BOX_RULES = ("mmpose0", "mmpose1")


@dataclass(frozen=True)
class CropBox:
    """A crop window in image pixels: centre (x, y) and size (w, h)."""

    cx: float
    cy: float
    w: float
    h: float

    @property
    def area(self) -> float:
        # mmpose's OKS-NMS area: prod(scale * 200) in 0.x, prod(bbox_scale) in 1.x.
        return float(np.float32(self.w) * np.float32(self.h))


def clean_box(bbox, width: int, height: int, area: float, rule: str) -> tuple[float, float, float, float] | None:
    """The cleaned box [x, y, w, h] under ``rule``, or None when that evaluation drops it."""
    x, y, w, h = (float(v) for v in bbox)
    if rule == "mmpose0":
        x1, y1 = max(0.0, x), max(0.0, y)
        x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
        y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
        if area > 0 and x2 > x1 and y2 > y1:
            return (x1, y1, x2 - x1, y2 - y1)
        return None
    if rule == "mmpose1":
        f = np.float32
        x1, x2 = f(np.clip(x, 0, width - 1)), f(np.clip(x + w, 0, width - 1))
        y1, y2 = f(np.clip(y, 0, height - 1)), f(np.clip(y + h, 0, height - 1))
        if x2 - x1 > 0 and y2 - y1 > 0:
            return (float(x1), float(y1), float(x2 - x1), float(y2 - y1))
        return None
    raise SpbenchError(f"unknown box rule {rule!r}: use one of {', '.join(BOX_RULES)}")


def crop_window(x: float, y: float, w: float, h: float, aspect: float, padding: float = 1.25) -> CropBox:
    """Centre and size of the crop around box [x, y, w, h] at aspect ratio ``aspect`` (w / h)."""
    f = np.float32
    cx, cy = f(x + w * 0.5), f(y + h * 0.5)
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return CropBox(float(cx), float(cy), float(f(w * padding)), float(f(h * padding)))


def has_labelled_keypoint(inst: Instance, rule: str) -> bool:
    vis = inst.visibility
    if not (vis > 0).any():
        return False
    if rule == "mmpose1":
        # 1.x drops instances whose keypoint coordinates are all <= 0, whatever their flags.
        return bool(inst.xy.max() > 0)
    return True


def topdown_boxes(instances, width: int, height: int, rule: str, aspect: float, padding: float = 1.25) -> list[CropBox | None]:
    """One crop window per instance, None where the official evaluation makes no prediction."""
    out: list[CropBox | None] = []
    for inst in instances:
        box = clean_box(inst.bbox, width, height, inst.area, rule) if has_labelled_keypoint(inst, rule) else None
        out.append(None if box is None else crop_window(*box, aspect=aspect, padding=padding))
    return out
