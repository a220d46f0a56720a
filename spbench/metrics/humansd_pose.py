"""HumanSD's pose accuracy (``utils/metrics/pose_metrics.py``): the people found on a generated
image, without ground-truth boxes, scored against the condition pose with COCOeval (AP, AR),
with CAP (:mod:`spbench.metrics.humansd_cap`) and with PCE, the people count error.

Ground truth, per image (HumanSD's dataset gives the condition as ``pose``: up to 10 people,
17 COCO keypoints each, in the frame of the generated image): the condition instances in the
canvas frame, the first ``max_condition_people`` of the sample; an instance enters when it has a
keypoint with x > 0 (``keypoint_num`` counts ``x > 0``). Official conventions (``fixed`` in
brackets, :data:`spbench.metrics.humansd_protocol.FIXES`): an unlabelled keypoint is
(-1, -1, 0) [(0, 0, 0)]; ``bbox`` = [min x, min y, max x - min x, max y - min y] and ``area`` =
the product of those extents, over all 17 keypoints [over the labelled ones]; ``num_keypoints`` =
the number with x > 0 [v > 0]; iscrowd 0; category person.

Detections: every pose found (HumanSD: HigherHRNet bottom-up, ``pose_nms_thr=1``, so no pose
NMS), keypoints in the canvas frame and a score. COCOeval: pycocotools keypoints, COCO's 17
sigmas, maxDets 20, areas all / medium / large (the official code runs xtcocotools, whose keypoint
evaluation is the same).

PCE of a set of images: the mean of |people in the condition - people detected| (``Human Number
Difference``); officially over the first n images by index, n the number of images with a
condition person (``for img_idx in range(len(gt_coco.imgToAnns))``) [over every image].

Batches (``pose_batch``): ``scripts/pose2img_metrics.py`` runs this once per batch of 10 images
and logs one row per batch; here each k's images are cut, in split order, into batches of
``pose_batch`` samples, each scored on its own, and every value is the mean over batches (a
batch where COCOeval has no value, e.g. no condition person, is left out of that value's mean).
``pose_batch = 0``: one COCOeval over all the images. ``pooled`` always holds the latter.
``drop_last`` (Stable-Pose's eval_pose.py: batches of 4 from a ``DataLoader(drop_last=True)``):
a last batch of fewer than ``pose_batch`` images is left out of the batch means (``pooled``
still scores every image; ``num_dropped_images`` counts them).
"""

from __future__ import annotations

import statistics

import numpy as np

from spbench.canvas import CanvasTransform
from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.metrics.base import Evaluator, spread_over_k
from spbench.metrics.humansd_cap import STAT_KEYS, cap_similarity, coco_keypoint_stats
from spbench.schemas import get_schema

CAP_KEYS = {"AP": "CAP", "AP50": "CAP50", "AP75": "CAP75", "AP_m": "CAP_m", "AP_l": "CAP_l",
            "AR": "CAR", "AR50": "CAR50", "AR75": "CAR75", "AR_m": "CAR_m", "AR_l": "CAR_l"}
VALUE_KEYS = STAT_KEYS + tuple(CAP_KEYS.values()) + ("PCE",)
PERSON = "person"


def ground_truth(sample: Sample, transform: CanvasTransform, max_people: int, fixed: bool) -> list[dict]:
    """The condition people of ``sample`` as HumanSD's COCO ground truth, canvas frame."""
    out = []
    for inst in sample.instances[:max_people]:
        xy = transform.points(inst.xy)
        vis = inst.visibility.astype(np.float64)
        labelled = vis > 0
        kpts = np.concatenate([xy, vis[:, None]], axis=1)
        kpts[~labelled] = 0.0 if fixed else -1.0
        kpts[~labelled, 2] = 0.0
        n = int(labelled.sum()) if fixed else int((kpts[:, 0] > 0).sum())
        if n == 0:
            continue
        span = kpts[labelled] if fixed else kpts
        (x0, y0), (x1, y1) = span[:, :2].min(axis=0), span[:, :2].max(axis=0)
        out.append({"keypoints": kpts.reshape(-1).tolist(), "num_keypoints": n,
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "area": float((y1 - y0) * (x1 - x0))})
    return out


def people_count_error(num_gt: list[int], num_dt: list[int], fixed: bool) -> float | None:
    """PCE of one batch of images (in index order): mean |condition people - detected people|;
    officially over the first n images, n = number of images with a condition person."""
    if len(num_gt) != len(num_dt):
        raise SpbenchError(f"PCE got {len(num_gt)} condition counts and {len(num_dt)} detection counts")
    n = len(num_gt) if fixed else sum(1 for g in num_gt if g > 0)
    diffs = [abs(g - d) for g, d in zip(num_gt[:n], num_dt[:n])]
    return statistics.fmean(diffs) if diffs else None


def coco_objects(images: list[tuple[list[dict], list[dict]]]):
    """pycocotools ``COCO`` ground truth and results of ``(ground truths, detections)`` per image
    (image ids 1..); results with no detection at all are an empty result set."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    coco_images, gts, dts = [], [], []
    for img_id, (g_list, d_list) in enumerate(images, start=1):
        coco_images.append({"id": img_id, "file_name": str(img_id)})
        gts += [{**g, "id": len(gts) + j + 1, "image_id": img_id, "category_id": 1, "iscrowd": 0}
                for j, g in enumerate(g_list)]
        dts += [{"keypoints": list(d["keypoints"]), "score": float(d["score"]), "image_id": img_id, "category_id": 1}
                for d in d_list]
    categories = [{"id": 1, "name": PERSON}]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": coco_images, "annotations": gts, "categories": categories}
        gt.createIndex()
        if dts:
            dt = gt.loadRes(dts)
        else:
            dt = COCO()
            dt.dataset = {"images": coco_images, "annotations": [], "categories": categories}
            dt.createIndex()
    return gt, dt


def score_images(images: list[tuple[list[dict], list[dict]]], sigmas, fixed: bool) -> dict:
    """AP/AR, CAP/CAR and PCE of one batch of images, ``(ground truths, detections)`` each, in
    index order (values in percent; PCE in people)."""
    out = {key: None for key in VALUE_KEYS}
    out["PCE"] = people_count_error([len(g) for g, _ in images], [len(d) for _, d in images], fixed)
    if not any(g for g, _ in images):
        return out  # COCOeval has no value without a condition person
    gt, dt = coco_objects(images)
    out.update(coco_keypoint_stats(gt, dt, sigmas))
    sim = lambda g, d: cap_similarity(g, d, sigmas, fixed)  # noqa: E731
    out.update({CAP_KEYS[k]: v for k, v in coco_keypoint_stats(gt, dt, sigmas, similarity=sim).items()})
    return out


class HumanSDPoseEvaluator(Evaluator):
    """Per image: the condition people (HumanSD's ground truth, canvas frame) and the detections."""

    name = "humansd-pose"

    def __init__(self, *, code: str = "official", pose_batch: int = 10, max_condition_people: int = 10,
                 schema: str = "coco17", diagnostic: bool = False, drop_last: bool = False, name: str | None = None):
        if name is not None:
            self.name = name  # stablepose-pose: the same metric, as Stable-Pose's script drives it
        self.fixed = code == "fixed"
        self.pose_batch = int(pose_batch)
        self.drop_last = bool(drop_last)
        self.max_condition_people = int(max_condition_people)
        self.schema = get_schema(schema)
        if self.schema.num_keypoints != 17:
            raise SpbenchError(f"the HumanSD protocol scores COCO's 17 body keypoints; schema {schema!r} has "
                               f"{self.schema.num_keypoints} (use it on Human-Art)")
        super().__init__(code=code, pose_batch=self.pose_batch, max_condition_people=self.max_condition_people,
                         schema=schema, diagnostic=bool(diagnostic), drop_last=self.drop_last)

    def update(self, sample: Sample, transform: CanvasTransform, k: int, order: int, detections: list[dict]) -> None:
        """Record image k of ``sample`` (``order``: the sample's position in the split, for the
        batches) with its detections ``{"keypoints": [K, 3] canvas pixels, "score"}``."""
        if sample.schema != self.schema.name:
            raise SpbenchError(f"sample {sample.sample_id} uses keypoint schema {sample.schema!r}; the HumanSD "
                               f"protocol scores {self.schema.name!r}")
        dets = []
        for d in detections:
            kpts = np.asarray(d["keypoints"], dtype=np.float64)
            if kpts.shape != (self.schema.num_keypoints, 3) or not np.isfinite(kpts).all():
                raise SpbenchError(f"sample {sample.sample_id} image {k}: a detection has keypoints of shape "
                                   f"{kpts.shape} (or non-finite ones), expected ({self.schema.num_keypoints}, 3)")
            dets.append({"keypoints": kpts.reshape(-1).tolist(), "score": float(d["score"])})
        gts = ground_truth(sample, transform, self.max_condition_people, self.fixed)
        self._add(sample.sample_id, k, {"order": int(order), "gt": gts, "dets": dets})

    # -- scoring ---------------------------------------------------------------------------

    def _batches(self, entries: list[dict]) -> list[list[dict]]:
        entries = sorted(entries, key=lambda e: (e["order"], e["sample_id"]))
        if self.pose_batch <= 0:
            return [entries] if entries else []
        batches = [entries[i:i + self.pose_batch] for i in range(0, len(entries), self.pose_batch)]
        if self.drop_last and batches and len(batches[-1]) < self.pose_batch:
            batches.pop()  # Stable-Pose's DataLoader(drop_last=True): the partial last batch is never scored
        return batches

    def _score(self, entries: list[dict]) -> dict:
        return score_images([(e["gt"], e["dets"]) for e in entries], self.schema.sigmas, self.fixed)

    @staticmethod
    def _mean(scored: list[dict]) -> dict:
        out = {}
        for key in VALUE_KEYS:
            values = [s[key] for s in scored if s[key] is not None]
            out[key] = round(statistics.fmean(values), 10) if values else None
        out["num_batches"] = len(scored)
        return out

    def compute(self) -> dict:
        """``AP``, ``AR``, ``CAP``, ``PCE``, ... (mean over batches; see the module doc),
        ``per_k``, ``pooled`` (one COCOeval over every image), counts."""
        entries = self.entries()
        by_k: dict[int, list[dict]] = {}
        for e in entries:
            by_k.setdefault(e["k"], []).append(e)
        per_k, every = {}, []
        for k in sorted(by_k):
            scored = [self._score(b) for b in self._batches(by_k[k])]
            every += scored
            per_k[str(k)] = {**self._mean(scored), **self._counts(by_k[k])}
        pooled = {**self._score(entries), **self._counts(entries)} if entries else {}
        result = self._mean(every) if self.pose_batch > 0 else {key: pooled.get(key) for key in VALUE_KEYS}
        if self.pose_batch <= 0:
            result["num_batches"] = 1 if entries else 0
        result.update(self._counts(entries))
        result["per_k"] = per_k
        result.update(spread_over_k(per_k, "AP"))
        result["pooled"] = pooled
        result.update(code="fixed" if self.fixed else "official", pose_batch=self.pose_batch, schema=self.schema.name)
        if self.drop_last:
            result.update(drop_last=True, num_dropped_images=len(entries) - sum(
                len(b) for k in by_k for b in self._batches(by_k[k])))
        if self.settings["diagnostic"]:  # an oracle pose model or detector: a check of the metric, not a result
            result["diagnostic"] = True
        return result

    @staticmethod
    def _counts(entries: list[dict]) -> dict:
        return {"num_images": len(entries), "num_condition_people": sum(len(e["gt"]) for e in entries),
                "num_detections": sum(len(e["dets"]) for e in entries)}

    def bootstrap_data(self) -> dict | str:
        """How :mod:`spbench.metrics.bootstrap` resamples the headline AP: with ``pose_batch = 0``
        it is one COCOeval over all images, resampled as the pose metric's AP is (a prompt with
        all its images; no detection at all scores 0); batched, it is a mean over fixed batches,
        which a resampled set of prompts does not have."""
        if self.pose_batch > 0:
            return (f"the headline is a mean over fixed batches of {self.pose_batch} images (the protocol's script); a "
                    "resampled set of prompts has no such batches (pose_batch=0 in the protocol's evaluation settings: "
                    "one COCOeval, which is resampled)")
        from spbench.metrics.bootstrap import DATA_FORMAT

        images = [{"sample_id": e["sample_id"], "k": e["k"],
                   "gts": [{"category": PERSON, **g} for g in e["gt"]],
                   "dets": [{"category": PERSON, **d} for d in e["dets"]]} for e in self.entries()]
        return {"format": DATA_FORMAT, "metric": self.name, "key": "AP", "kind": "coco", "iou_type": "keypoints",
                "use_categories": True, "sigmas": [float(v) for v in self.schema.sigmas], "empty": 0.0,
                "images": images}

    def image_record(self, entry: dict) -> dict:
        return {"sample_id": entry["sample_id"], "k": entry["k"], "num_condition_people": len(entry["gt"]),
                "num_detections": len(entry["dets"]), "count_error": abs(len(entry["gt"]) - len(entry["dets"])),
                "scores": [d["score"] for d in entry["dets"]]}
