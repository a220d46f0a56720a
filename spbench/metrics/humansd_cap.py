"""CAP, HumanSD's cosine-similarity AP (``utils/metrics/coco_similarity.py``, ``COCOevalSimilarity``
with its default ``weightedCosineSimilarity``), and the COCOeval runs that give AP/AR and CAP.

The similarity of a detection ``d`` to a ground-truth pose ``g`` (17 keypoints each):

1. every coordinate divided by its keypoint's OKS sigma (``weighted``);
2. only the keypoints labelled in ``g`` (v > 0) kept, in both;
3. each of the four coordinate vectors (x of g, y of g, x of d, y of d) min-max normalised to
   [0, 1] on its own, then divided by its L2 norm;
4. the cosine of the concatenations ``[x_g, y_g]`` and ``[x_d, y_d]``.

As published, step 3 ends with ``yd=xd/np.sqrt((yd**2).sum())``: the detection's y part is its
*x* part divided by the norm of its y part, so the detection's y coordinates only enter through
that norm. ``fixed=True`` uses the detection's own y part. A zero range (all kept keypoints on
one vertical or horizontal line, or a single one) divides 0 by 0: the similarity is NaN, and
COCOeval's matching (``if sim < threshold: continue``) lets a NaN match at every threshold, in
both codes, as the published evaluation does.

CAP then is COCOeval's keypoint AP with this similarity in place of OKS (thresholds .50:.05:.95,
maxDets 20, the same greedy matching, accumulation and summary), which is what
``evaluateImgSimilarity`` / ``accumulateSimilarity`` / ``summarizeSimilarity`` re-implement; so
it is computed by pycocotools' COCOeval with ``computeOks`` replaced.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

# COCOeval keypoint stats, in order (pycocotools' _summarizeKps): AP, AP50, AP75, AP medium,
# AP large, AR, AR50, AR75, AR medium, AR large.
STAT_KEYS = ("AP", "AP50", "AP75", "AP_m", "AP_l", "AR", "AR50", "AR75", "AR_m", "AR_l")


def cap_similarity(gt, dt, sigmas, fixed: bool = False) -> float:
    """HumanSD's weighted cosine similarity of detection ``dt`` to ground truth ``gt``, each
    [K, 3] (x, y, v) or their flat COCO lists (see the module doc; NaN when a range is zero)."""
    g = np.asarray(gt, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(dt, dtype=np.float64).reshape(-1, 3)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    keep = g[:, 2] > 0
    xg, yg = (g[:, 0] / sigmas)[keep], (g[:, 1] / sigmas)[keep]
    xd, yd = (d[:, 0] / sigmas)[keep], (d[:, 1] / sigmas)[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        xg, yg, xd, yd = (_min_max(v) for v in (xg, yg, xd, yd))
        xg, yg, xd = xg / _norm(xg), yg / _norm(yg), xd / _norm(xd)
        yd = (yd if fixed else xd) / _norm(yd)
        g_, d_ = np.concatenate([xg, yg]), np.concatenate([xd, yd])
        return float(np.sum(g_ * d_) / (np.linalg.norm(g_) * np.linalg.norm(d_)))


def _min_max(v: np.ndarray) -> np.ndarray:
    return (v - np.min(v)) / (np.max(v) - np.min(v))


def _norm(v: np.ndarray) -> float:
    return np.sqrt((v ** 2).sum())


def coco_keypoint_stats(gt, dt, sigmas, similarity=None) -> dict:
    """pycocotools' COCOeval (keypoints, maxDets 20) of COCO objects ``gt`` / ``dt``: the ten
    summary stats in percent (None where COCOeval has none, -1). ``similarity(gt_kpts, dt_kpts)``
    replaces OKS (CAP); None keeps OKS with ``sigmas``."""
    from pycocotools.cocoeval import COCOeval

    class _Eval(COCOeval):
        def computeOks(self, imgId, catId):  # noqa: N802 (pycocotools' name)
            if similarity is None:
                return super().computeOks(imgId, catId)
            gts, dts = self._gts[imgId, catId], self._dts[imgId, catId]
            order = np.argsort([-d["score"] for d in dts], kind="mergesort")
            dts = [dts[i] for i in order][: self.params.maxDets[-1]]
            if not gts or not dts:
                return []
            return np.array([[similarity(g["keypoints"], d["keypoints"]) for g in gts] for d in dts], dtype=np.float64)

    with contextlib.redirect_stdout(io.StringIO()):
        ev = _Eval(gt, dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # Rounded as spbench's other COCO metrics (pycocotools' tp / (tp + fp + eps) is 0.99999...).
    return {key: None if v < 0 else round(float(v) * 100.0, 10) for key, v in zip(STAT_KEYS, ev.stats)}
