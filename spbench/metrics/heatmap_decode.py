"""Heatmaps -> keypoints in image pixels, as the official evaluations decode them.

- :func:`flip_back`: heatmaps of the mirrored crop put back: left/right channels swapped, columns
  mirrored, and with ``shift=True`` moved one column right (column 0 keeps its value), the
  ``shift_heatmap=True`` of mmpose 0.x's AP-10K ViTPose config. Human-Art's mmpose 1.x config
  sets ``shift_heatmap=False``.
- :func:`decode_default` (mmpose 0.x ``keypoints_from_heatmaps``, ``post_process='default'``,
  Gaussian target, no UDP): the argmax (x, y) (-1 where the maximum is <= 0) moves 0.25 px toward
  the higher neighbour in x and in y, only when 1 < x < W - 1 and 1 < y < H - 1 (strict, so column
  1 gets no shift); then x_img = x * window_w / W + cx - window_w / 2 (y alike).
- :func:`decode_udp` (mmpose 1.x ``UDPHeatmap.decode``, blur kernel 11): the argmax refined by
  one Newton step on the log of the Gaussian-blurred heatmap (DARK-UDP); then
  x_img = x / (W - 1) * window_w + cx - window_w / 2.

The score of a keypoint is the heatmap maximum in both.
"""

from __future__ import annotations

import numpy as np

from spbench.metrics.topdown_boxes import CropBox


def flip_back(heatmaps: np.ndarray, flip_pairs, shift: bool) -> np.ndarray:
    """[N, K, H, W] heatmaps of mirrored crops -> heatmaps in the unmirrored crop's frame."""
    out = heatmaps.copy()
    for a, b in flip_pairs:
        out[:, a], out[:, b] = heatmaps[:, b], heatmaps[:, a]
    out = out[..., ::-1].copy()
    if shift:
        out[..., 1:] = out[..., :-1].copy()
    return out


def _argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer (x, y) of each [H, W] map's maximum ([N, K, 2], -1 where it is <= 0) and the maximum."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = flat.argmax(axis=2)
    vals = flat.max(axis=2)
    xy = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
    xy[vals <= 0] = -1
    return xy, vals


def _to_image(xy: np.ndarray, box: CropBox, step_x: float, step_y: float) -> np.ndarray:
    return np.stack([xy[:, 0] * step_x + box.cx - box.w * 0.5, xy[:, 1] * step_y + box.cy - box.h * 0.5], axis=1)


def decode_default(heatmaps: np.ndarray, boxes: list[CropBox]) -> np.ndarray:
    """[N, K, H, W] heatmaps and their crop windows -> [N, K, 3] (x, y, score) in image pixels."""
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    n, k, h, w = heatmaps.shape
    xy, vals = _argmax(heatmaps)
    for i in range(n):
        for j in range(k):
            px, py = int(xy[i, j, 0]), int(xy[i, j, 1])
            if 1 < px < w - 1 and 1 < py < h - 1:
                hm = heatmaps[i, j]
                xy[i, j, 0] += np.sign(hm[py, px + 1] - hm[py, px - 1]) * 0.25
                xy[i, j, 1] += np.sign(hm[py + 1, px] - hm[py - 1, px]) * 0.25
    out = np.empty((n, k, 3), dtype=np.float64)
    for i, box in enumerate(boxes):
        out[i, :, :2] = _to_image(xy[i], box, box.w / w, box.h / h)
    out[..., 2] = vals
    return out


def blur(heatmap: np.ndarray, kernel: int = 11) -> np.ndarray:
    """mmpose's heatmap modulation: Gaussian blur (OpenCV, sigma from the kernel size) of the map
    padded with zeros, rescaled to the original maximum."""
    import cv2

    border = (kernel - 1) // 2
    padded = np.zeros((heatmap.shape[0] + 2 * border, heatmap.shape[1] + 2 * border), dtype=np.float32)
    padded[border:-border, border:-border] = heatmap
    out = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border].copy()
    out *= heatmap.max() / out.max()
    return out


def _newton_step(logmap: np.ndarray, x: int, y: int) -> np.ndarray:
    """Offset -H^-1 g of the quadratic fit of ``logmap`` (edge-padded) around integer (x, y)."""
    p = np.pad(logmap, 1, mode="edge")
    x, y = x + 1, y + 1

    def at(dx, dy):
        return p[y + dy, x + dx]

    gx = 0.5 * (at(1, 0) - at(-1, 0))
    gy = 0.5 * (at(0, 1) - at(0, -1))
    gxx = at(1, 0) - 2 * at(0, 0) + at(-1, 0)
    gyy = at(0, 1) - 2 * at(0, 0) + at(0, -1)
    gxy = 0.5 * (at(1, 1) - at(1, 0) - at(0, 1) + 2 * at(0, 0) - at(-1, 0) - at(0, -1) + at(-1, -1))
    hess = np.array([[gxx, gxy], [gxy, gyy]], dtype=np.float64) + np.finfo(np.float32).eps * np.eye(2)
    return -np.linalg.inv(hess) @ np.array([gx, gy], dtype=np.float64)


def decode_udp(heatmaps: np.ndarray, boxes: list[CropBox], kernel: int = 11) -> np.ndarray:
    """[N, K, H, W] heatmaps and their crop windows -> [N, K, 3] (x, y, score) in image pixels."""
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    n, k, h, w = heatmaps.shape
    xy, vals = _argmax(heatmaps)
    refined = xy.astype(np.float64)
    for i in range(n):
        for j in range(k):
            if vals[i, j] <= 0:
                continue  # no maximum to refine (mmpose reads past the map here; we keep -1)
            logmap = np.log(np.clip(blur(heatmaps[i, j], kernel), 1e-3, 50.0))
            refined[i, j] += _newton_step(logmap, int(xy[i, j, 0]), int(xy[i, j, 1]))
    out = np.empty((n, k, 3), dtype=np.float64)
    for i, box in enumerate(boxes):
        out[i, :, :2] = _to_image(refined[i], box, box.w / (w - 1), box.h / (h - 1))
    out[..., 2] = vals
    return out
