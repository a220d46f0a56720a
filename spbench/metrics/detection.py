"""Detection AP.75 (paper §4.1): Grounding-DINO prompted with the category name, its boxes scored
against the ground-truth boxes with COCO box AP. This module is the metric (what is scored, and
the evaluator); the detectors are :mod:`spbench.metrics.detection_models`' and
:mod:`spbench.metrics.detection_scoring` runs it over a run.

Conventions (recorded in the result's ``evaluation.det``):
- one prompt per (image, category of its sample), Grounding-DINO's format: the lower-case name and
  a dot ("dog.", "polar bear.", "person."). Its detections get that category, so no phrase
  matching is needed and an image with two species is scored per species;
- detection score and box as ``post_process_grounded_object_detection`` and the official demo
  compute them: max sigmoid over the prompt's tokens, centre boxes to corners scaled to the image;
  images are canvas-sized, so boxes are in canvas pixels;
- no score cut by default (``evaluation.det_box_threshold: 0.0``): COCO-style, the 100 best
  detections per image and category are kept (COCOeval's maxDets);
- ground truth: the box of every instance with a labelled keypoint, mapped to the canvas (area =
  canvas box area, used only by COCO's size ranges; we report the "all" range). An instance
  without one is not in the condition, so no method is asked to generate it: it is neither
  ground truth nor prompted for;
- pycocotools ``COCOeval(iouType="bbox")`` with its defaults: per-category AP averaged over
  categories, IoU .50:.05:.95, maxDets 100. AP.75 is the paper's number; percent, rounded to 10
  decimals (so the oracle's perfect score is exactly 100.0);
- per k and over all k pooled; spread: mean and sample std of AP.75 over k.
"""

from __future__ import annotations

import numpy as np

from spbench.canvas import CanvasTransform
from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.metrics.base import Evaluator, spread_over_k
from spbench.metrics.coco import coco_ap, coco_objects


def scored_instances(sample: Sample) -> list[tuple[int, object]]:
    """(index in ``sample.instances``, instance) of the instances detection scores: those with a
    labelled keypoint."""
    return [(j, inst) for j, inst in enumerate(sample.instances) if inst.labelled]


def scored_categories(sample: Sample) -> tuple[str, ...]:
    return tuple(dict.fromkeys(inst.category for _, inst in scored_instances(sample)))


def bbox_iou(a, b) -> float:
    """IoU of two [x, y, w, h] boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


class DetectionEvaluator(Evaluator):
    name = "det"

    def __init__(self, use_categories: bool = True, diagnostic: bool = False):
        self.use_categories = use_categories
        self.diagnostic = diagnostic  # scored by an oracle: a check of the metric, not a result
        super().__init__(use_categories=use_categories)

    def update(self, sample: Sample, transform: CanvasTransform, k: int, detections: list[dict]) -> None:
        """Record image k of ``sample``: its GT boxes mapped to the canvas, and the detections
        (``{"category", "bbox": [x, y, w, h] in canvas pixels, "score"}``)."""
        gts = []
        for _, inst in scored_instances(sample):
            x, y, w, h = transform.bbox(inst.bbox)
            gts.append({"category": inst.category, "bbox": [x, y, w, h], "area": w * h})
        dets = []
        for d in detections:
            bbox = np.asarray(d["bbox"], dtype=np.float64)
            if bbox.shape != (4,) or not np.isfinite(bbox).all() or not np.isfinite(d["score"]):
                raise SpbenchError(f"sample {sample.sample_id} image {k}: a detection has box {d['bbox']!r} "
                                   f"and score {d['score']!r}; expected finite [x, y, w, h] and score")
            dets.append({"category": str(d["category"]), "bbox": bbox.tolist(), "score": float(d["score"])})
        self._add(sample.sample_id, k, {"gts": gts, "dets": dets})

    def _evaluate(self, gt, dt, img_ids: list[int], counts: dict) -> dict:
        out = {"AP75": None, "AP": None, "AP50": None, **counts}
        if counts["num_instances"] == 0:
            return out
        if dt is None:  # ground truth but not one detection anywhere: nothing found
            return {**out, "AP75": 0.0, "AP": 0.0, "AP50": 0.0}
        out.update(coco_ap(gt, dt, "bbox", img_ids, self.use_categories))
        return out

    def compute(self) -> dict:
        """``{"AP75", "AP", "AP50"`` (percent, all images pooled), ``"per_k": {"0": {...}}``,
        ``"mean_over_k", "std_over_k"`` (of AP75), counts``}``."""
        entries = self.entries()
        gt, dt = coco_objects([(f"{e['sample_id']}_{e['k']}", e["gts"], e["dets"]) for e in entries])
        ids_by_k: dict[int, list[int]] = {}
        for img_id, e in enumerate(entries, start=1):
            ids_by_k.setdefault(e["k"], []).append(img_id)

        def counts(ids):
            chosen = [entries[i - 1] for i in ids]
            return {"num_images": len(ids), "num_instances": sum(len(e["gts"]) for e in chosen),
                    "num_detections": sum(len(e["dets"]) for e in chosen)}

        all_ids = list(range(1, len(entries) + 1))
        result = self._evaluate(gt, dt, all_ids, counts(all_ids))
        result["per_k"] = {str(k): self._evaluate(gt, dt, ids, counts(ids)) for k, ids in sorted(ids_by_k.items())}
        result.update(spread_over_k(result["per_k"], "AP75"))
        result["use_categories"] = self.use_categories
        if self.diagnostic:
            result["diagnostic"] = True
        return result

    def image_record(self, entry: dict) -> dict:
        """For each GT box, the best IoU with a detection of its category (and that detection's
        score); not COCOeval's matching."""
        insts = []
        for g in entry["gts"]:
            same = [d for d in entry["dets"] if d["category"] == g["category"]]
            best = max(same, key=lambda d: bbox_iou(g["bbox"], d["bbox"]), default=None)
            insts.append({"category": g["category"], "bbox": g["bbox"],
                          "iou": bbox_iou(g["bbox"], best["bbox"]) if best else 0.0,
                          "score": best["score"] if best else None})
        return {"sample_id": entry["sample_id"], "k": entry["k"], "instances": insts,
                "num_detections": len(entry["dets"])}
