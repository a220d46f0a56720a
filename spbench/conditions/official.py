"""Conditions sized the way the official SP-Ctrl code sizes them.

The official scripts draw the index map and the OpenPose image once per image, at the *original*
image size (keypoint radius 4, stick width 4, original coordinates), and resize afterwards:

- inference (``inference/gen_keypoint_w_controlnet*.py``): the index map is loaded as a float
  tensor and resized with ``torchvision.transforms.Resize((512, 512), interpolation=NEAREST)``,
  i.e. torch's ``nearest`` rule: target pixel i takes source pixel ``floor(i * src / dst)`` (its
  top-left corner, scale in float32), **not** the pixel-centre rule of PIL's NEAREST; the OpenPose
  image is resized with ``PIL.Image.resize((512, 512), Image.BILINEAR)``;
- training (``custom_datasets/coco*_keypoints_offline_dataset.py``, ``preprocess``): the shorter
  side is resized to 512 with torchvision on the PIL image (index map NEAREST, i.e. PIL's
  pixel-centre rule; OpenPose and the image BILINEAR), then a centre crop of 512×512.

``render_official`` gives the inference-side canvas image; :func:`official_training_crop` and
:func:`resize_short_side_and_crop` the training side.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from spbench.canvas import CanvasTransform, round_half_up
from spbench.data.records import Sample
from spbench.errors import SpbenchError

# generation.condition_render: "official" (draw at the original size, then resize as the official
# inference) or "native" (draw on the canvas, keypoints 4 canvas pixels wide).
RENDER_MODES = ("official", "native")
# How each drawn condition kind is resized: label maps by nearest neighbour, images bilinearly.
RESAMPLE = {"spatial-pose": "nearest", "openpose": "bilinear"}


def check_render_mode(mode: str) -> str:
    if mode not in RENDER_MODES:
        raise SpbenchError(f"generation.condition_render {mode!r} is not known: use one of {', '.join(RENDER_MODES)}")
    return mode


def original_frame(sample: Sample) -> CanvasTransform:
    """The identity transform on the original image (scale exactly 1.0, no offset)."""
    return CanvasTransform.fit(sample.width, sample.height, (sample.width, sample.height))


def torch_nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index of each of ``dst`` target pixels under torch's ``nearest`` interpolation
    (what torchvision's Resize(NEAREST) does to a tensor): ``min(floor(i * scale), src - 1)``
    with ``scale = float32(src) / dst`` and the product in float32, as torch's CPU kernel."""
    scale = np.float32(src) / np.float32(dst)
    idx = np.floor(np.arange(dst, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(idx, src - 1)


def resize_nearest_torch(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an [H, W] or [H, W, C] array to ``height × width`` by torch's ``nearest`` rule."""
    rows = torch_nearest_indices(array.shape[0], height)
    cols = torch_nearest_indices(array.shape[1], width)
    return array[rows[:, None], cols[None, :]]


def resize_official(image: Image.Image, kind: str, width: int, height: int) -> Image.Image:
    """An original-size condition resized as the official inference does it (see module doc)."""
    if image.size == (width, height):
        return image
    if RESAMPLE.get(kind) == "nearest":
        return Image.fromarray(resize_nearest_torch(np.asarray(image), width, height))
    return image.resize((width, height), Image.Resampling.BILINEAR)


def render_official(
    kind: str, draw: Callable[[Sample, CanvasTransform], Image.Image], sample: Sample, transform: CanvasTransform
) -> Image.Image:
    """Draw ``kind`` with ``draw`` at the original size, then bring it onto the canvas.

    ``stretch``: resized to the canvas (the official inference). ``letterbox`` (no official
    counterpart): resized to the letterboxed image's size and pasted at its offset, exactly where
    :func:`spbench.canvas.image_to_canvas` puts the image; the bands stay 0.
    """
    full = draw(sample, original_frame(sample))
    size = (transform.width, transform.height)
    if transform.mode == "stretch":
        return resize_official(full, kind, *size)
    if transform.mode == "letterbox":
        w = max(1, round(sample.width * transform.scale_x))
        h = max(1, round(sample.height * transform.scale_y))
        out = Image.new(full.mode, size)
        offset = (round_half_up(transform.offset_x), round_half_up(transform.offset_y))
        out.paste(resize_official(full, kind, w, h), offset)
        return out
    raise SpbenchError(f"canvas mode {transform.mode!r} has no official condition rendering: use stretch or letterbox, or generation.condition_render=native")


# ---- training (official `preprocess`) ----------------------------------------------------------


def short_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) after torchvision's ``Resize(size)``: the shorter side becomes ``size``, the longer
    ``int(size * long / short)`` (truncated)."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def official_training_crop(width: int, height: int, size: int) -> CanvasTransform:
    """The original -> training-crop transform of the official ``preprocess``: ``Resize(size)``
    (shorter side to ``size``) then ``CenterCrop(size)``, whose corner is
    ``int(round((resized - size) / 2))`` per axis (Python's round: halves to even)."""
    rw, rh = short_side_size(width, height, size)
    left, top = int(round((rw - size) / 2.0)), int(round((rh - size) / 2.0))
    return CanvasTransform(size, size, rw / width, rh / height, float(-left), float(-top), "centre-crop")


def resize_short_side_and_crop(image: Image.Image, size: int, resample: int) -> Image.Image:
    """torchvision ``Compose([Resize(size, resample), CenterCrop(size)])`` on a PIL image
    (``resample``: Image.NEAREST for index maps, Image.BILINEAR otherwise), in plain PIL."""
    rw, rh = short_side_size(image.width, image.height, size)
    if (rw, rh) != image.size:
        image = image.resize((rw, rh), resample)
    # The longer side is int(size * long / short) >= size, so the crop never needs padding.
    left, top = int(round((rw - size) / 2.0)), int(round((rh - size) / 2.0))
    return image.crop((left, top, left + size, top + size))
