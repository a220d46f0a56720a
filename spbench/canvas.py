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

:func:`image_to_canvas` brings an original-size image into the canvas frame the same way the
keypoints are brought there, so a condition can be laid over it and a real image can be scored
in the frame generated images live in.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

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


def round_half_up(x: float) -> int:
    """``floor(x + 0.5)``: how canvas offsets become whole pixels."""
    return int(math.floor(x + 0.5))


def image_to_canvas(
    image: Image.Image, transform: CanvasTransform, resample: int = Image.Resampling.BICUBIC
) -> Image.Image:
    """The image in canvas frame: RGB, ``transform.width × transform.height``.

    ``stretch``: resized to the canvas (each axis on its own). ``letterbox``: resized by
    (scale_x, scale_y) to ``round(w * scale)`` pixels per axis and pasted on black at the offset
    rounded half up (``floor(offset + 0.5)``). The image should be the one the transform was fitted
    to; for ``stretch`` any size works.
    """
    image = image.convert("RGB")
    size = (transform.width, transform.height)
    if transform.mode == "stretch":
        return image.resize(size, resample)
    if transform.mode == "letterbox":
        w = max(1, round(image.width * transform.scale_x))
        h = max(1, round(image.height * transform.scale_y))
        out = Image.new("RGB", size)
        offset = (round_half_up(transform.offset_x), round_half_up(transform.offset_y))
        out.paste(image.resize((w, h), resample), offset)
        return out
    raise SpbenchError(f"unknown canvas mode {transform.mode!r}: use 'stretch' or 'letterbox'")
