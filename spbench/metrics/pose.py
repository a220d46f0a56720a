"""Pose mAP: COCO OKS-based keypoint AP of predicted keypoints against the condition pose.

Two protocols (``spbench.metrics.evaluate.PROTOCOLS``):

- ``canvas`` (spbench's own): ground-truth keypoints, boxes and areas of a sample are mapped by its
  :class:`~spbench.canvas.CanvasTransform` (areas by ``scale_x * scale_y``, the OKS scale) and
  predictions come in canvas pixels; one prediction per GT instance; an instance with no labelled
  keypoint is dropped with its prediction; no OKS-NMS.
- ``official`` (:mod:`spbench.metrics.pose_official`): the caller passes an identity transform
  (images resized back to the original size) and the crop windows; an instance may have no
  prediction (``None``: box dropped by the box rule, or no labelled keypoint) and stays in the
  COCO ground truth, where COCOeval ignores it when it has no labelled keypoint (a detection
  matched to it is ignored, not a false positive); the predictions of an image go through OKS-NMS
  (crop-window areas, the dataset's sigmas) before COCOeval.

Shared conventions (mmpose's top-down evaluation with GT boxes):
- each detection has its instance's category;
- detection score (``score_mode="mmpose"``): mean of the keypoint scores above 0.2 (0 when none)
  times the box score 1.0; ``"mean"`` is the plain mean of all keypoint scores;
- ``use_categories=True`` keeps COCOeval's per-category AP averaged over categories, which is
  what mmpose reports for AP-10K (species as categories); Human-Art has one category (person);
- COCOeval's keypoint defaults otherwise: maxDets 20, OKS thresholds .50:.05:.95;
- each (sample, k) pair, k the index of the generated image of that sample, is one COCO image;
- results in percent, rounded to 10 decimals, so a perfect score is exactly 100.0.
"""

from __future__ import annotations

import math

import numpy as np

from spbench.canvas import CanvasTransform
from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.metrics.base import Evaluator, spread_over_k
from spbench.metrics.coco import AP_DECIMALS, coco_ap, coco_objects
from spbench.metrics.oks_nms import oks_nms
from spbench.metrics.pose_official import OfficialPose
from spbench.schemas import KeypointSchema

# mmpose's ``vis_thr``: keypoints below it do not count towards the rescored detection score.
MMPOSE_VIS_THR = 0.2
SCORE_MODES = ("mmpose", "mean")


def detection_score(scores: np.ndarray, mode: str = "mmpose", vis_thr: float = MMPOSE_VIS_THR) -> float:
    scores = np.asarray(scores, dtype=np.float64)
    if mode == "mean":
        return float(scores.mean()) if scores.size else 0.0
    keep = scores[scores > vis_thr]
    return float(keep.mean()) if keep.size else 0.0


def oks(pred_xy, gt_xy, visibility, area: float, sigmas) -> float:
    """COCO's object keypoint similarity of one prediction to one GT (NaN if nothing visible):
    mean over visible GT keypoints of exp(-d² / (2 s² k²)), k = 2σ, s² = area."""
    pred_xy = np.asarray(pred_xy, dtype=np.float64).reshape(-1, 2)
    gt_xy = np.asarray(gt_xy, dtype=np.float64).reshape(-1, 2)
    vis = np.asarray(visibility) > 0
    if not vis.any():
        return math.nan
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    d2 = ((pred_xy - gt_xy) ** 2).sum(axis=1)
    # Same arithmetic as pycocotools' computeOks (area + eps), so records match its matching.
    e = d2 / var / (area + np.spacing(1)) / 2
    return float(np.exp(-e)[vis].mean())


class PoseEvaluator(Evaluator):
    name = "pose"

    def __init__(self, schema: KeypointSchema, *, score_mode: str = "mmpose", use_categories: bool = True,
                 official: OfficialPose | None = None):
        if score_mode not in SCORE_MODES:
            raise SpbenchError(f"unknown pose score mode {score_mode!r}: use one of {', '.join(SCORE_MODES)}")
        self.schema = schema
        self.score_mode = score_mode
        self.use_categories = use_categories
        self.official = official
        super().__init__(schema=schema.name, protocol=self.protocol)

    @property
    def _vis_thr(self) -> float:
        return MMPOSE_VIS_THR if self.official is None else self.official.vis_thr

    @property
    def protocol(self) -> str:
        return "canvas" if self.official is None else "official"

    @property
    def keeps_ignored_gt(self) -> bool:
        """Whether an instance with no labelled keypoint stays in the COCO ground truth, where
        COCOeval ignores it (a detection it absorbs is neither a match nor a false positive): the
        official protocol, as mmpose. The canvas protocol drops it with its prediction."""
        return self.official is not None

    # -- recording -------------------------------------------------------------------------

    def update(self, sample: Sample, transform: CanvasTransform, k: int, predictions: list, crop_boxes: list | None = None) -> None:
        """Record image k of ``sample``: GT instances mapped by ``transform``, one prediction each
        (official protocol: ``None`` for no prediction, and ``crop_boxes`` the crop windows)."""
        if sample.schema != self.schema.name:
            raise SpbenchError(
                f"sample {sample.sample_id} uses keypoint schema {sample.schema!r}, "
                f"but this pose evaluator scores {self.schema.name!r}"
            )
        if len(predictions) != len(sample.instances):
            raise SpbenchError(
                f"sample {sample.sample_id} image {k}: {len(predictions)} predicted poses for "
                f"{len(sample.instances)} instances (top-down needs one per GT box)"
            )
        if self.official is not None and (crop_boxes is None or len(crop_boxes) != len(sample.instances)):
            raise SpbenchError(f"sample {sample.sample_id} image {k}: the official pose protocol needs one crop "
                               f"window (or None) per instance")
        n = self.schema.num_keypoints
        instances, kept_boxes, skipped = [], [], 0
        for j, (inst, pred) in enumerate(zip(sample.instances, predictions)):
            vis = inst.visibility
            if len(vis) != n:
                raise SpbenchError(f"sample {sample.sample_id}: an instance has {len(vis)} keypoints, expected {n}")
            if pred is None and self.official is None:
                raise SpbenchError(f"sample {sample.sample_id} image {k}: a missing prediction (canvas protocol predicts every instance)")
            if pred is not None:
                pred = self._check_pred(sample, k, pred)
            if not (vis > 0).any() and not self.keeps_ignored_gt:
                # COCOeval ignores such GT; dropping the pair keeps its detection from being a false positive.
                skipped += 1
                continue
            record = self._ground_truth(inst, transform)
            record["pred"] = None if pred is None else pred.reshape(-1).tolist()
            record["score"] = None if pred is None else detection_score(pred[:, 2], self.score_mode, self._vis_thr)
            instances.append(record)
            kept_boxes.append(None if crop_boxes is None else crop_boxes[j])
        if self.official is not None:
            self._suppress(instances, kept_boxes)
        self._add(sample.sample_id, k, {"instances": instances, "skipped": skipped})

    def _check_pred(self, sample: Sample, k: int, pred) -> np.ndarray:
        n = self.schema.num_keypoints
        pred = np.asarray(pred, dtype=np.float64)
        if pred.shape != (n, 3):
            raise SpbenchError(
                f"sample {sample.sample_id} image {k}: a prediction has shape {pred.shape}, "
                f"expected ({n}, 3) for schema {self.schema.name!r} — does the pose model "
                f"predict this schema's keypoints?"
            )
        if not np.isfinite(pred).all():
            raise SpbenchError(f"sample {sample.sample_id} image {k}: non-finite predicted keypoints")
        return pred

    @staticmethod
    def _ground_truth(inst, transform: CanvasTransform) -> dict:
        vis = inst.visibility
        xy = transform.points(inst.xy)
        gt = np.concatenate([xy, vis[:, None].astype(np.float64)], axis=1)
        gt[vis == 0] = 0.0  # COCO writes unlabelled keypoints as (0, 0, 0)
        bbox = transform.bbox(inst.bbox)
        area = transform.area(inst.area) if inst.area > 0 else bbox[2] * bbox[3]
        return {
            "annotation_id": int(inst.annotation_id),
            "category": inst.category,
            "bbox": [float(v) for v in bbox],
            "area": float(area),
            "keypoints": gt.reshape(-1).tolist(),
            "num_keypoints": int((vis > 0).sum()),
        }

    def _suppress(self, instances: list[dict], crop_boxes: list) -> None:
        """OKS-NMS over this image's predictions (official protocol); marks the dropped ones."""
        have = [i for i, inst in enumerate(instances) if inst["pred"] is not None]
        for inst in instances:
            inst["suppressed"] = False
        if not have:
            return
        poses = np.array([np.reshape(instances[i]["pred"], (-1, 3)) for i in have])
        keep = set(oks_nms(poses, [instances[i]["score"] for i in have], [crop_boxes[i].area for i in have],
                           self.official.nms_thr, self.schema.sigmas))
        for j, i in enumerate(have):
            instances[i]["suppressed"] = j not in keep

    # -- scoring ---------------------------------------------------------------------------

    @staticmethod
    def _coco(entries: list[dict]):
        gt_fields = ("category", "bbox", "area", "keypoints", "num_keypoints")
        return coco_objects([
            (f"{e['sample_id']}_{e['k']}",
             [{key: i[key] for key in gt_fields} for i in e["instances"]],
             [{"category": i["category"], "keypoints": i["pred"], "score": i["score"]}
              for i in e["instances"] if _detected(i)])
            for e in entries])

    def _evaluate(self, gt, dt, img_ids: list[int], num_instances: int) -> dict:
        out = {"AP": None, "AP50": None, "AP75": None, "num_images": len(img_ids), "num_instances": num_instances}
        if dt is None or num_instances == 0:
            return out
        out.update(coco_ap(gt, dt, "keypoints", img_ids, self.use_categories, self.schema.sigmas))
        return out

    def compute(self) -> dict:
        """``{"AP", "AP50", "AP75"`` (percent, over all (sample, k) images pooled),
        ``"per_k": {"0": {...}, ...}``, ``"num_images", "num_instances", ...}``."""
        entries = self.entries()
        gt, dt = self._coco(entries)
        ids_by_k: dict[int, list[int]] = {}
        inst_by_k: dict[int, int] = {}
        for img_id, e in enumerate(entries, start=1):
            ids_by_k.setdefault(e["k"], []).append(img_id)
            inst_by_k[e["k"]] = inst_by_k.get(e["k"], 0) + len(e["instances"])
        all_ids = list(range(1, len(entries) + 1))
        result = self._evaluate(gt, dt, all_ids, sum(inst_by_k.values()))
        result["per_k"] = {
            str(k): self._evaluate(gt, dt, ids_by_k[k], inst_by_k[k]) for k in sorted(ids_by_k)
        }
        result.update(spread_over_k(result["per_k"], "AP"))
        result["num_skipped_instances"] = sum(e["skipped"] for e in entries)
        # Not COCOeval's matching: each prediction against its own instance; continuous, so it moves
        # with any change of sigmas, areas or frame even where no OKS crosses an AP threshold.
        own = [v for e in entries for i in e["instances"] if (v := self._own_oks(i)) is not None]
        result["oks_mean"] = round(float(np.mean(own)), AP_DECIMALS) if own else None
        result["schema"] = self.schema.name
        result["score_mode"] = self.score_mode
        result["use_categories"] = self.use_categories
        result["protocol"] = self.protocol
        if self.official is not None:
            insts = [i for e in entries for i in e["instances"]]
            result["num_ignored_instances"] = sum(i["num_keypoints"] == 0 for i in insts)
            result["num_undetected_instances"] = sum(i["pred"] is None for i in insts)
            result["num_suppressed_detections"] = sum(bool(i.get("suppressed")) for i in insts)
        return result

    def _own_oks(self, inst: dict) -> float | None:
        """OKS of an instance's prediction with its own ground truth (None: no prediction, or no
        labelled keypoint)."""
        if inst["pred"] is None or inst["num_keypoints"] == 0:
            return None
        gt = np.array(inst["keypoints"]).reshape(-1, 3)
        pred = np.array(inst["pred"]).reshape(-1, 3)
        return oks(pred[:, :2], gt[:, :2], gt[:, 2], inst["area"], np.array(self.schema.sigmas))

    def image_record(self, entry: dict) -> dict:
        """Each instance's OKS against its own GT (not COCOeval's matching)."""
        insts = []
        for inst in entry["instances"]:
            rec = {
                "annotation_id": inst["annotation_id"],
                "category": inst["category"],
                "oks": self._own_oks(inst),
                "score": inst["score"],
                "num_visible": inst["num_keypoints"],
            }
            if self.official is not None:
                rec["detected"] = inst["pred"] is not None
                rec["suppressed"] = bool(inst.get("suppressed"))
            insts.append(rec)
        return {"sample_id": entry["sample_id"], "k": entry["k"], "instances": insts, "skipped": entry["skipped"]}


def _detected(inst: dict) -> bool:
    """A detection that reaches COCOeval: predicted and not removed by OKS-NMS."""
    return inst["pred"] is not None and not inst.get("suppressed", False)
