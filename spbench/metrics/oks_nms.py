"""OKS-NMS over the predicted poses of one image, as mmpose's ``oks_nms`` (0.x and 1.x alike).

Greedy: take the highest-scored pose (ties: numpy's ``argsort`` order, reversed, as mmpose),
drop every remaining pose whose OKS with it is above ``thr``, repeat. The OKS between two
predictions uses all keypoints (no visibility threshold: both official evaluations call it
without ``vis_thr``) and the mean of the two crop-window areas as the scale:
mean_k exp(-d_k^2 / (2 sigma_k)^2 / ((a1 + a2) / 2 + eps) / 2).
"""

from __future__ import annotations

import numpy as np


def pose_overlap(pose: np.ndarray, others: np.ndarray, area: float, other_areas: np.ndarray, sigmas) -> np.ndarray:
    """OKS of ``pose`` ([K, >=2]) with each of ``others`` ([M, K, >=2])."""
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    d2 = ((np.asarray(others)[:, :, :2] - np.asarray(pose)[None, :, :2]) ** 2).sum(axis=2)
    scale = (area + np.asarray(other_areas, dtype=np.float64)) / 2 + np.spacing(1)
    e = d2 / var[None, :] / scale[:, None] / 2
    return np.exp(-e).mean(axis=1)


def oks_nms(poses: np.ndarray, scores, areas, thr: float, sigmas) -> list[int]:
    """Indices of the poses kept, highest score first."""
    poses = np.asarray(poses, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    order = np.argsort(np.asarray(scores, dtype=np.float64))[::-1]
    keep: list[int] = []
    while order.size:
        best, rest = int(order[0]), order[1:]
        keep.append(best)
        if not rest.size:
            break
        overlap = pose_overlap(poses[best], poses[rest], areas[best], areas[rest], sigmas)
        order = rest[overlap <= thr]
    return keep
