"""The canvas: the frame images are generated in, and the one transform into it.

Conditions are drawn on the canvas and generated images are scored on the canvas, so both use
the same :class:`CanvasTransform` from original-image coordinates::

    canvas_xy = original_xy * (scale_x, scale_y) + (offset_x, offset_y)

Modes:
- ``stretch`` (default, as the official SP-Ctrl inference): the image is resized to the canvas,
  each axis on its own (scale_x = W/w, scale_y = H/h, no offset).
- ``letterbox``: one scale for both axes (min(W/w, H/h)), the image centred, the rest padded.
- ``centre-crop`` (training only, not a generation mode): the official training frame, the shorter
  side resized to the canvas and the middle cut out
  (:func:`spbench.conditions.official.official_training_crop`).

Areas (OKS scale, box areas) scale by ``scale_x * scale_y``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spbench.errors import SpbenchError

CANVAS_MODES = ("stretch", "letterbox")


@dataclass(frozen=True)
class CanvasTransform:
    width: int
    height: int
    scale_x: float
    scale_y: float
    offset_x: float = 0.0
    offset_y: float = 0.0
    mode: str = "stretch"

    @classmethod
    def fit(cls, src_width: int, src_height: int, size: int | tuple[int, int], mode: str = "stretch"):
        width, height = (size, size) if isinstance(size, int) else size
        if mode == "stretch":
            return cls(width, height, width / src_width, height / src_height, 0.0, 0.0, mode)
        if mode == "letterbox":
            s = min(width / src_width, height / src_height)
            return cls(width, height, s, s, (width - s * src_width) / 2, (height - s * src_height) / 2, mode)
        raise SpbenchError(f"unknown canvas mode {mode!r}: use one of {', '.join(CANVAS_MODES)}")

    def points(self, xy) -> np.ndarray:
        """Map an [N, 2] array of original-image (x, y) to canvas coordinates."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return xy * np.array([self.scale_x, self.scale_y]) + np.array([self.offset_x, self.offset_y])

    def bbox(self, xywh) -> tuple[float, float, float, float]:
        x, y, w, h = xywh
        (cx, cy), = self.points([[x, y]])
        return (float(cx), float(cy), float(w * self.scale_x), float(h * self.scale_y))

    def area(self, area: float) -> float:
        return float(area * self.scale_x * self.scale_y)

    def to_dict(self) -> dict:
        return asdict(self)
