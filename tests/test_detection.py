"""Detection AP.75: the oracle scores exactly 100, shifted boxes score lower in order, our AP equals
pycocotools run directly on hand-built dicts, states merge, and the tiny Grounding-DINO runs end to
end (in memory and from a saved folder) with scores and boxes equal to transformers' own
post-processing."""

from __future__ import annotations

import contextlib
import io
import os
import pickle

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from PIL import Image

from spbench.canvas import CanvasTransform
from spbench.data.records import Instance, Sample
from spbench.errors import SpbenchError
from spbench.metrics.coco import AP_DECIMALS
from spbench.metrics.detection import DetectionEvaluator
from spbench.metrics.detection_models import GroundingDinoDetector, OracleDetector, build_tiny_grounding_dino, load_detector
from spbench.metrics.detection_scoring import score_detection

# 2:1 originals on a square canvas: x and y scale differently, so the mapping matters.
SRC_W, SRC_H, CANVAS = 400, 200, 256
K = 3


def make_samples(n: int = 8, seed: int = 0) -> list[Sample]:
    """Samples with 1-3 instances of up to two species each (boxes in original pixels)."""
    rng = np.random.default_rng(seed)
    cats = ["dog", "cat", "zebra"]
    samples, ann = [], 1
    for i in range(n):
        insts = []
        for j in range(1 + i % 3):
            w, h = rng.uniform(60, 160), rng.uniform(40, 120)
            x, y = rng.uniform(0, SRC_W - w), rng.uniform(0, SRC_H - h)
            kps = tuple((float(x + w / 2), float(y + h / 2), 2) for _ in range(17))
            box = (float(x), float(y), float(w), float(h))
            insts.append(Instance(cats[(i + j // 2) % 3], box, float(w * h), kps, ann))
            ann += 1
        samples.append(Sample(f"det-{i:03d}", i, f"{i}.jpg", SRC_W, SRC_H, "ap10k", tuple(insts), "a photo<KPT>"))
    return samples


def canvas(sample: Sample) -> CanvasTransform:
    return CanvasTransform.fit(sample.width, sample.height, CANVAS, "stretch")


def hand_canvas_box(inst: Instance) -> list[float]:
    sx, sy = CANVAS / SRC_W, CANVAS / SRC_H
    x, y, w, h = inst.bbox
    return [x * sx, y * sy, w * sx, h * sy]


def noisy_detections(samples, level: float, seed: int) -> dict:
    """Per (sample, k): each GT box (canvas) moved by `level` times its size in a fixed random
    direction, random scores; plus an occasional false positive and a missed box."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in samples:
        for k in range(K):
            dets = []
            for inst in s.instances:
                x, y, w, h = hand_canvas_box(inst)
                dx, dy = rng.uniform(-1, 1, 2)
                score = float(rng.uniform(0.05, 1.0))
                if rng.uniform() < 0.1:
                    continue
                moved = [x + level * dx * w, y + level * dy * h, w, h]
                dets.append({"category": inst.category, "bbox": moved, "score": score})
            if rng.uniform() < 0.3:
                dets.append({"category": s.instances[0].category, "bbox": list(rng.uniform(0, 150, 4) + [0, 0, 20, 20]),
                             "score": float(rng.uniform(0, 1))})
            out[(s.sample_id, k)] = dets
    return out


def run_evaluator(samples, dets, ks=range(K)) -> DetectionEvaluator:
    ev = DetectionEvaluator()
    for s in samples:
        for k in ks:
            ev.update(s, canvas(s), k, dets[(s.sample_id, k)])
    return ev


def direct_cocoeval(samples, dets, ks) -> tuple[float, float, float]:
    """COCO gt/dt dicts built by hand (canvas = x * W/w, y * H/h), scored by pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    names = sorted({i.category for s in samples for i in s.instances})
    ids = {c: n + 1 for n, c in enumerate(names)}
    images, anns, results = [], [], []
    for s in samples:
        for k in ks:
            images.append({"id": len(images) + 1})
            for inst in s.instances:
                box = hand_canvas_box(inst)
                anns.append({"id": len(anns) + 1, "image_id": len(images), "category_id": ids[inst.category],
                             "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
            for d in dets[(s.sample_id, k)]:
                results.append({"image_id": len(images), "category_id": ids[d["category"]], "bbox": d["bbox"],
                                "score": d["score"]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        categories = [{"id": i, "name": c} for c, i in ids.items()]
        gt.dataset = {"images": images, "annotations": anns, "categories": categories}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ap, ap50, ap75 = (round(float(v) * 100, AP_DECIMALS) for v in ev.stats[:3])
    return ap75, ap, ap50


def headline(r: dict) -> tuple:
    return r["AP75"], r["AP"], r["AP50"]


def test_oracle_scores_exactly_100():
    samples = make_samples()
    oracle = OracleDetector()
    ev = DetectionEvaluator()
    for s in samples:
        for k in range(K):
            ev.update(s, canvas(s), k, oracle.predict([Image.new("RGB", (CANVAS, CANVAS))], [s], [canvas(s)])[0])
    res = ev.compute()
    assert headline(res) == (100.0, 100.0, 100.0)
    assert set(res["per_k"]) == {"0", "1", "2"} and all(headline(r) == (100.0,) * 3 for r in res["per_k"].values())
    assert (res["mean_over_k"], res["std_over_k"]) == (100.0, 0.0)
    assert res["num_instances"] == K * sum(len(s.instances) for s in samples)
    assert all(i["iou"] == pytest.approx(1.0) for r in ev.records() for i in r["instances"])


def test_boxes_in_the_original_frame_do_not_score():
    samples = make_samples()
    dets = {(s.sample_id, 0): [{"category": i.category, "bbox": list(i.bbox), "score": 1.0} for i in s.instances]
            for s in samples}
    assert run_evaluator(samples, dets, ks=[0]).compute()["AP"] < 50.0


def test_shifted_boxes_score_lower_in_order():
    samples = make_samples(n=12, seed=1)
    results = [run_evaluator(samples, noisy_detections(samples, level, seed=3)).compute()
               for level in (0.0, 0.05, 0.1, 0.15, 0.25, 0.4)]
    aps, ap75s = [r["AP"] for r in results], [r["AP75"] for r in results]
    assert all(a > b for a, b in zip(aps, aps[1:])), aps
    assert all(a >= b for a, b in zip(ap75s, ap75s[1:])) and ap75s[0] > ap75s[-1], ap75s


def test_equals_direct_pycocotools_pooled_and_per_k():
    samples = make_samples(n=10, seed=2)
    dets = noisy_detections(samples, 0.12, seed=4)
    res = run_evaluator(samples, dets).compute()
    assert 0.0 < res["AP75"] < 100.0
    assert headline(res) == direct_cocoeval(samples, dets, range(K))
    for k in range(K):
        assert headline(res["per_k"][str(k)]) == direct_cocoeval(samples, dets, [k])
    assert res["mean_over_k"] == pytest.approx(np.mean([res["per_k"][str(k)]["AP75"] for k in range(K)]))


def test_no_detection_at_all_scores_zero():
    samples = make_samples(n=2)
    res = run_evaluator(samples, {(s.sample_id, k): [] for s in samples for k in range(K)}).compute()
    assert headline(res) == (0.0, 0.0, 0.0) and res["num_detections"] == 0


def test_merged_states_equal_one_process():
    samples = make_samples(n=9, seed=5)
    dets = noisy_detections(samples, 0.1, seed=6)
    full = run_evaluator(samples, dets)
    keys = [(s, k) for s in samples for k in range(K)]
    a, b = DetectionEvaluator(), DetectionEvaluator()
    for n, (s, k) in enumerate(keys + [keys[1]]):  # one image scored twice, as a padded batch would
        (a if n % 2 else b).update(s, canvas(s), k, dets[(s.sample_id, k)])
    merged = DetectionEvaluator().merge(pickle.loads(pickle.dumps([b.state(), a.state()])))
    assert merged.compute() == full.compute() and merged.records() == full.records()


def test_update_rejects_bad_detections_and_wrong_sizes():
    s = make_samples(n=1)[0]
    with pytest.raises(SpbenchError, match="finite"):
        bad = [{"category": "dog", "bbox": [0, 0, float("nan"), 1], "score": 1.0}]
        DetectionEvaluator().update(s, canvas(s), 0, bad)
    with pytest.raises(SpbenchError, match="canvas"):
        OracleDetector().predict([Image.new("RGB", (SRC_W, SRC_H))], [s], [canvas(s)])


# -- tiny Grounding-DINO ------------------------------------------------------------------------------

def _images(n, size=64, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def test_tiny_grounding_dino_equals_transformers_post_processing():
    import torch

    model, processor = build_tiny_grounding_dino()
    detector = GroundingDinoDetector(model, processor, "tiny", batch_size=2, max_detections=10)
    images, texts = _images(3), ["dog.", "polar bear.", "person."]
    found = detector.detect(images, texts)
    inputs = processor(images=images, text=texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        outputs = model(**inputs)
    reference = processor.post_process_grounded_object_detection(
        outputs, inputs["input_ids"], threshold=0.0, text_threshold=0.0, target_sizes=[(64, 64)] * 3)
    for (scores, boxes), ref in zip(found, reference):
        order = torch.argsort(ref["scores"], descending=True)[:10]
        x0, y0, x1, y1 = ref["boxes"][order].unbind(-1)
        np.testing.assert_allclose(scores, ref["scores"][order].numpy(), atol=1e-5)
        np.testing.assert_allclose(boxes, torch.stack([x0, y0, x1 - x0, y1 - y0], -1).numpy(), atol=1e-3)
    assert len(found[0][0]) == 10
    # A lone image (a batch of one) runs too, and batching does not change it.
    (alone_scores, alone_boxes), = detector.detect(images[2:], texts[2:])
    np.testing.assert_allclose(alone_scores, found[2][0], atol=1e-5)
    np.testing.assert_allclose(alone_boxes, found[2][1], atol=1e-3)


def test_tiny_grounding_dino_from_a_saved_folder(tmp_path):
    model, processor = build_tiny_grounding_dino()
    model.save_pretrained(tmp_path / "gd")
    processor.save_pretrained(tmp_path / "gd")
    samples = make_samples(n=3, seed=7)
    small = [CanvasTransform.fit(s.width, s.height, 64) for s in samples]
    from_folder = load_detector(str(tmp_path / "gd"), batch_size=2).predict(_images(3), samples, small)
    in_memory = load_detector("tiny://grounding-dino").predict(_images(3), samples, small)
    for a, b, s in zip(from_folder, in_memory, samples):
        assert [d["category"] for d in a] == [d["category"] for d in b]
        assert {d["category"] for d in a} == set(s.categories)  # one prompt per category
        np.testing.assert_allclose([d["score"] for d in a], [d["score"] for d in b], atol=1e-5)


def test_score_detection_on_a_run(tmp_path):
    from test_clip_fid import make_run

    ctx, rows, split = make_run(tmp_path, noise=(0.0, 30.0))
    ev = score_detection(ctx, rows)
    res = ev.compute()
    assert set(res["per_k"]) == {"0", "1"} and 0.0 <= res["AP75"] <= 100.0
    # Ground truth: the instances with a labelled keypoint (the sample's ignored sheep is not one).
    assert res["num_instances"] == 2 * sum(len(s.labelled_instances) for s in split.samples)
    assert sum(len(s.labelled_instances) for s in split.samples) < sum(len(s.instances) for s in split.samples)
    records = {(r["sample_id"], r["k"]): r for r in ev.records()}
    two_species = next(s for s in split.samples if len(s.categories) == 2)
    assert records[(two_species.sample_id, 0)]["num_detections"] == 2 * 30  # tiny model: 30 queries per prompt
    assert ev.description["model"] == "tiny://grounding-dino" and ev.description["box_threshold"] == 0.0
    ctx.config["models"]["detector"] = "oracle"
    assert headline(score_detection(ctx, rows).compute()) == (100.0, 100.0, 100.0)


def test_missing_detector_is_a_one_line_error():
    with pytest.raises(SpbenchError) as e:
        load_detector("spbench-tests/no-such-grounding-dino")
    msg = str(e.value)
    assert "spbench-tests/no-such-grounding-dino" in msg and "detector" in msg and "\n" not in msg
