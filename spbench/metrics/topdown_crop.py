"""The top-down crop: one crop window of an image warped to the pose model's input.

As the official pipelines do it (no rotation at test time):

- ``udp=False`` (mmpose 0.x ``TopDownAffine`` with ``get_affine_transform``, AP-10K): one scale
  s = input_w / window_w for both axes, the window centre onto the input centre
  (input_w / 2, input_h / 2).
- ``udp=True`` (mmpose 1.x ``TopdownAffine(use_udp=True)`` with ``get_udp_warp_matrix``,
  Human-Art): the window [cx - w/2, cx + w/2] onto [0, input_w - 1] (and y alike), so
  s_x = (input_w - 1) / window_w.

Pixels are sampled with ``cv2.warpAffine(..., INTER_LINEAR)`` and a black border, as mmpose does,
then scaled to [0, 1] and normalised with the ImageNet mean and std of both configs.
"""

from __future__ import annotations

import numpy as np

from spbench.metrics.topdown_boxes import CropBox

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def crop_matrix(box: CropBox, input_size: tuple[int, int], udp: bool) -> np.ndarray:
    """2x3 affine matrix from image pixels to input pixels; ``input_size`` is (w, h)."""
    in_w, in_h = input_size
    if udp:
        sx, sy = (in_w - 1.0) / box.w, (in_h - 1.0) / box.h
        return np.array([[sx, 0.0, sx * (box.w * 0.5 - box.cx)],
                         [0.0, sy, sy * (box.h * 0.5 - box.cy)]], dtype=np.float64)
    s = in_w / box.w
    return np.array([[s, 0.0, in_w * 0.5 - s * box.cx],
                     [0.0, s, in_h * 0.5 - s * box.cy]], dtype=np.float64)


def crop(image: np.ndarray, box: CropBox, input_size: tuple[int, int], udp: bool) -> np.ndarray:
    """The uint8 HxWx3 crop of ``image`` (HxWx3 uint8 RGB) for ``box``."""
    import cv2

    return cv2.warpAffine(image, crop_matrix(box, input_size, udp), (int(input_size[0]), int(input_size[1])),
                          flags=cv2.INTER_LINEAR)


def to_pixel_values(crops: list[np.ndarray]):
    """Stack uint8 RGB crops into a normalised float32 [N, 3, H, W] tensor."""
    import torch

    x = np.stack(crops).astype(np.float32) / 255.0
    x = (x - np.array(IMAGENET_MEAN, dtype=np.float32)) / np.array(IMAGENET_STD, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
