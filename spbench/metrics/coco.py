"""pycocotools for the COCO-style metrics (pose OKS-mAP, detection box AP): per-image annotations
in, COCO ground-truth and result objects out (:func:`coco_objects`), and COCOeval's AP
(:func:`coco_ap`)."""

from __future__ import annotations

import contextlib
import io

# Percent values are rounded to this many decimals (far below any reported precision).
AP_DECIMALS = 10


def coco_objects(images: list[tuple[str, list[dict], list[dict]]]):
    """``(ground truth, results)`` as pycocotools ``COCO`` objects; results None where there is no
    detection at all, both None without images.

    ``images``: per image (COCO image id: its position + 1), its name, its ground truths and its
    detections, each a dict with a ``category`` and its COCO fields (ground truth: ``bbox``,
    ``area``, and for keypoints ``keypoints`` and ``num_keypoints``; detection: ``bbox`` or
    ``keypoints``, and ``score``). Categories get ids 1.. in name order; annotations ids 1.. in
    order; nothing given is modified (pycocotools writes into what it holds)."""
    if not images:
        return None, None
    from pycocotools.coco import COCO

    cats = sorted({a["category"] for _, gts, dets in images for a in (*gts, *dets)})
    cat_id = {c: j + 1 for j, c in enumerate(cats)}
    coco_images, annotations, results = [], [], []
    for img_id, (name, gts, dets) in enumerate(images, start=1):
        coco_images.append({"id": img_id, "file_name": name})
        for g in gts:
            annotations.append({**_fields(g), "id": len(annotations) + 1, "image_id": img_id,
                                "category_id": cat_id[g["category"]], "iscrowd": 0})
        for d in dets:
            results.append({**_fields(d), "image_id": img_id, "category_id": cat_id[d["category"]]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": coco_images, "annotations": annotations,
                      "categories": [{"id": i, "name": c} for c, i in cat_id.items()]}
        gt.createIndex()
        dt = gt.loadRes(results) if results else None
    return gt, dt


def _fields(annotation: dict) -> dict:
    return {key: v for key, v in annotation.items() if key != "category"}


def coco_ap(gt, dt, iou_type: str, img_ids: list[int], use_categories: bool, kpt_sigmas=None) -> dict:
    """AP, AP50, AP75 in percent from pycocotools' COCOeval over ``img_ids`` (None: undefined)."""
    import numpy as np
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, dt, iouType=iou_type)
        if kpt_sigmas is not None:
            ev.params.kpt_oks_sigmas = np.array(kpt_sigmas)
        ev.params.imgIds = img_ids
        ev.params.useCats = int(use_categories)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # Rounded: pycocotools' tp / (tp + fp + eps) makes a perfect single match 0.99999...98.
    return {key: None if v < 0 else round(float(v) * 100.0, AP_DECIMALS)
            for key, v in zip(("AP", "AP50", "AP75"), ev.stats[:3])}
