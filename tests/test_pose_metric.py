"""Pose mAP: oracle = 100, monotone in noise, equal to pycocotools run by hand, mergeable, and the
ViTPose path runs end to end on a tiny model loaded from a folder."""

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
from spbench.metrics.pose import PoseEvaluator, oks
from spbench.metrics.pose_models import (
    OraclePoseModel,
    VitPosePoseModel,
    build_tiny_vitpose,
    load_pose_model,
    save_tiny_vitpose,
)
from spbench.schemas import AP10K, COCO17

# 2:1 originals on a square "stretch" canvas: x and y scale differently, so the transform matters.
SRC_W, SRC_H, CANVAS = 400, 200, 256
K_PER_SAMPLE = 3


def _instance(rng, category: str, ann_id: int) -> Instance:
    w, h = rng.uniform(60, 160), rng.uniform(40, 120)
    x, y = rng.uniform(0, SRC_W - w), rng.uniform(0, SRC_H - h)
    vis = rng.choice([0, 1, 2], size=17, p=[0.2, 0.2, 0.6])
    vis[0] = 2  # never an instance without visible keypoints
    kps = tuple(
        (0.0, 0.0, 0) if v == 0 else (float(x + rng.uniform(0, w)), float(y + rng.uniform(0, h)), int(v))
        for v in vis
    )
    return Instance(category, (float(x), float(y), float(w), float(h)), float(w * h * 0.6), kps, ann_id)


def make_samples(schema, n: int = 6, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    cats = ["dog", "cat", "zebra"] if schema is AP10K else ["person"]
    samples, ann = [], 1
    for i in range(n):
        insts = []
        for j in range(1 + i % 3):
            insts.append(_instance(rng, cats[(i + j) % len(cats)], ann))
            ann += 1
        samples.append(Sample(f"{schema.name}-{i:03d}", i, f"{i}.jpg", SRC_W, SRC_H, schema.name, tuple(insts), "a photo<KPT>"))
    return samples


def canvas(sample: Sample) -> CanvasTransform:
    return CanvasTransform.fit(sample.width, sample.height, CANVAS, "stretch")


def noisy_predictions(samples, noise: float, seed: int):
    """Per (sample, k): condition keypoints in the canvas frame plus Gaussian noise of `noise`
    times the instance scale, with random keypoint scores."""
    rng = np.random.default_rng(seed)
    oracle = OraclePoseModel()
    out = {}
    for s in samples:
        t = canvas(s)
        for k in range(K_PER_SAMPLE):
            preds = oracle.predict([None], [s], [t])[0]
            noisy = []
            for inst, p in zip(s.instances, preds):
                p = p.copy()
                scale = np.sqrt(t.area(inst.area))
                p[:, :2] += rng.normal(0, noise * scale, size=(len(p), 2))
                p[:, 2] = rng.uniform(0.05, 1.0, size=len(p))
                noisy.append(p)
            out[(s.sample_id, k)] = noisy
    return out


def run_evaluator(schema, samples, preds, keys=None) -> PoseEvaluator:
    ev = PoseEvaluator(schema)
    for s in samples:
        for k in range(K_PER_SAMPLE):
            if keys is None or (s.sample_id, k) in keys:
                ev.update(s, canvas(s), k, preds[(s.sample_id, k)])
    return ev


# -- independent pycocotools reference -----------------------------------------------------------

def direct_cocoeval(schema, samples, preds, ks) -> tuple[float, float, float]:
    """Builds the COCO gt/dt dicts by hand (canvas = x*W/w, y*H/h) and runs pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sx, sy = CANVAS / SRC_W, CANVAS / SRC_H
    cat_names = sorted({i.category for s in samples for i in s.instances})
    cat_ids = {c: n + 1 for n, c in enumerate(cat_names)}
    images, anns, dets = [], [], []
    img_id = 0
    for s in samples:
        for k in ks:
            img_id += 1
            images.append({"id": img_id})
            for inst, p in zip(s.instances, preds[(s.sample_id, k)]):
                kps = []
                for x, y, v in inst.keypoints:
                    kps += [x * sx, y * sy, v]
                bx, by, bw, bh = inst.bbox
                anns.append({
                    "id": len(anns) + 1, "image_id": img_id, "category_id": cat_ids[inst.category],
                    "bbox": [bx * sx, by * sy, bw * sx, bh * sy], "area": inst.area * sx * sy,
                    "iscrowd": 0, "keypoints": kps, "num_keypoints": sum(1 for _, _, v in inst.keypoints if v > 0),
                })
                good = [float(c) for c in p[:, 2] if c > 0.2]  # mmpose rescoring, box score 1
                dets.append({
                    "image_id": img_id, "category_id": cat_ids[inst.category],
                    "keypoints": [float(c) for c in p.reshape(-1)],
                    "score": sum(good) / len(good) if good else 0.0,
                })
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": i, "name": c} for c, i in cat_ids.items()]}
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.array(schema.sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return tuple(round(float(v) * 100, AP_DECIMALS) for v in ev.stats[:3])


# -- (a) oracle ----------------------------------------------------------------------------------

@pytest.mark.parametrize("schema", [AP10K, COCO17])
def test_oracle_scores_exactly_100(schema):
    samples = make_samples(schema)
    model = OraclePoseModel()
    ev = PoseEvaluator(schema)
    for s in samples:
        t = canvas(s)
        assert (t.scale_x, t.scale_y) == (CANVAS / SRC_W, CANVAS / SRC_H)
        for k in range(K_PER_SAMPLE):
            img = Image.new("RGB", (CANVAS, CANVAS))
            ev.update(s, t, k, model.predict([img], [s], [t])[0])
    res = ev.compute()
    assert (res["AP"], res["AP50"], res["AP75"]) == (100.0, 100.0, 100.0)
    assert set(res["per_k"]) == {"0", "1", "2"}
    for r in res["per_k"].values():
        assert (r["AP"], r["AP50"], r["AP75"]) == (100.0, 100.0, 100.0)
    assert res["num_images"] == len(samples) * K_PER_SAMPLE
    assert res["num_instances"] == sum(len(s.instances) for s in samples) * K_PER_SAMPLE
    assert all(i["oks"] == 1.0 for r in ev.records() for i in r["instances"])


def test_oracle_in_original_frame_is_not_100():
    """Scoring unmapped (original-frame) keypoints against the canvas GT must fail: the frame matters."""
    samples = make_samples(AP10K)
    ev = PoseEvaluator(AP10K)
    for s in samples:
        identity = CanvasTransform.fit(s.width, s.height, (s.width, s.height))
        preds = OraclePoseModel().predict([None], [s], [identity])[0]
        ev.update(s, canvas(s), 0, preds)
    assert ev.compute()["AP"] < 50.0


# -- (b) monotone in noise -----------------------------------------------------------------------

@pytest.mark.parametrize("schema", [AP10K, COCO17])
def test_ap_decreases_with_noise(schema):
    samples = make_samples(schema, n=12, seed=1)
    aps = []
    for noise in (0.015, 0.02, 0.03, 0.045, 0.06, 0.08):
        preds = noisy_predictions(samples, noise, seed=7)
        aps.append(run_evaluator(schema, samples, preds).compute()["AP"])
    assert all(a > b for a, b in zip(aps, aps[1:])), aps


# -- (c), (d) equal to pycocotools by hand ------------------------------------------------------

@pytest.mark.parametrize("schema", [AP10K, COCO17])
def test_equals_direct_pycocotools(schema):
    samples = make_samples(schema, n=8, seed=2)
    preds = noisy_predictions(samples, 0.04, seed=3)
    res = run_evaluator(schema, samples, preds).compute()
    ref = direct_cocoeval(schema, samples, preds, ks=range(K_PER_SAMPLE))
    assert 0.0 < res["AP"] < 100.0
    assert (res["AP"], res["AP50"], res["AP75"]) == ref


@pytest.mark.parametrize("schema", [AP10K, COCO17])
def test_per_k_equals_direct_pycocotools_on_subsets(schema):
    samples = make_samples(schema, n=8, seed=4)
    preds = noisy_predictions(samples, 0.04, seed=5)
    res = run_evaluator(schema, samples, preds).compute()
    for k in range(K_PER_SAMPLE):
        r = res["per_k"][str(k)]
        assert 0.0 < r["AP"] < 100.0
        assert (r["AP"], r["AP50"], r["AP75"]) == direct_cocoeval(schema, samples, preds, ks=[k])
        assert r["num_images"] == len(samples)
    # Evaluating only k = 0 images (the official AP-10K protocol) equals per_k["0"].
    only0 = run_evaluator(schema, samples, preds, keys={(s.sample_id, 0) for s in samples}).compute()
    assert {m: only0[m] for m in ("AP", "AP50", "AP75")} == {m: res["per_k"]["0"][m] for m in ("AP", "AP50", "AP75")}


def test_records_oks_matches_formula():
    samples = make_samples(AP10K, n=3, seed=6)
    preds = noisy_predictions(samples, 0.05, seed=8)
    ev = run_evaluator(AP10K, samples, preds)
    recs = {(r["sample_id"], r["k"]): r for r in ev.records()}
    s = samples[1]
    t = canvas(s)
    inst, p = s.instances[0], preds[(s.sample_id, 2)][0]
    gt = t.points(inst.xy)
    vis = inst.visibility > 0
    d2 = ((p[:, :2] - gt) ** 2).sum(1)
    k2 = (2 * np.array(AP10K.sigmas)) ** 2
    expected = np.mean(np.exp(-d2 / (2 * t.area(inst.area) * k2))[vis])
    got = recs[(s.sample_id, 2)]["instances"][0]["oks"]
    assert got == pytest.approx(expected, rel=1e-9)
    assert oks(gt, gt, inst.visibility, 100.0, AP10K.sigmas) == 1.0


# -- (e) merge -----------------------------------------------------------------------------------

def test_merged_states_equal_single_evaluator():
    samples = make_samples(AP10K, n=9, seed=9)
    preds = noisy_predictions(samples, 0.04, seed=10)
    full = run_evaluator(AP10K, samples, preds)
    keys = [(s.sample_id, k) for s in samples for k in range(K_PER_SAMPLE)]
    a = run_evaluator(AP10K, samples, preds, keys=set(keys[1::2]))
    # Rank b also re-scores one of a's images, as accelerate's padding of the last batch does.
    b = run_evaluator(AP10K, samples, preds, keys=set(keys[0::2]) | {keys[1]})
    states = pickle.loads(pickle.dumps([b.state(), a.state()]))  # gather_object pickles
    merged = PoseEvaluator(AP10K).merge(states)
    assert merged.compute() == full.compute()
    assert merged.records() == full.records()
    assert 0.0 < full.compute()["AP"] < 100.0


def test_sync_is_noop_in_one_process():
    samples = make_samples(COCO17, n=2)
    ev = run_evaluator(COCO17, samples, noisy_predictions(samples, 0.05, seed=0))
    before = ev.compute()
    assert ev.sync().compute() == before


def test_update_rejects_mismatches():
    s = make_samples(AP10K, n=2)[1]
    ev = PoseEvaluator(COCO17)
    with pytest.raises(SpbenchError, match="schema"):
        ev.update(s, canvas(s), 0, OraclePoseModel().predict([None], [s], [canvas(s)])[0])
    ev = PoseEvaluator(AP10K)
    with pytest.raises(SpbenchError, match="instances"):
        ev.update(s, canvas(s), 0, [])
    with pytest.raises(SpbenchError, match="shape"):
        ev.update(s, canvas(s), 0, [np.zeros((16, 3))] * len(s.instances))


# -- (f) tiny ViTPose from a folder --------------------------------------------------------------

def _canvas_images(samples, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (CANVAS, CANVAS, 3), dtype=np.uint8)) for _ in samples]


def test_tiny_vitpose_from_saved_folder(tmp_path):
    path = save_tiny_vitpose(tmp_path / "tiny-vitpose", num_experts=2)
    samples = make_samples(AP10K, n=4, seed=11)
    transforms = [canvas(s) for s in samples]
    images = _canvas_images(samples)

    with pytest.raises(SpbenchError, match="dataset_index"):
        VitPosePoseModel(path)
    model = VitPosePoseModel(path, dataset_index=1, batch_size=3)
    preds = model.predict(images, samples, transforms)
    assert len(preds) == len(samples)
    for s, per_image in zip(samples, preds):
        assert len(per_image) == len(s.instances)
        for p in per_image:
            assert p.shape == (17, 3) and np.isfinite(p).all()
            assert (p[:, 0] > -CANVAS / 2).all() and (p[:, 0] < 1.5 * CANVAS).all()
            assert (p[:, 1] > -CANVAS / 2).all() and (p[:, 1] < 1.5 * CANVAS).all()
    # Batching across images does not change the keypoints beyond float noise.
    one_by_one = VitPosePoseModel(path, dataset_index=1, batch_size=1).predict(images, samples, transforms)
    for a, b in zip(preds, one_by_one):
        for pa, pb in zip(a, b):
            np.testing.assert_allclose(pa, pb, atol=1e-3)
    # The expert matters: another dataset_index gives other keypoints.
    other = VitPosePoseModel(path, dataset_index=0, batch_size=3).predict(images, samples, transforms)
    assert not np.allclose(other[0][0], preds[0][0])
    # And the evaluator takes them.
    ev = PoseEvaluator(AP10K)
    for s, t, p in zip(samples, transforms, preds):
        ev.update(s, t, 0, p)
    assert ev.compute()["num_instances"] == sum(len(s.instances) for s in samples)


def test_tiny_spec_is_deterministic_and_checks_image_size():
    samples = make_samples(COCO17, n=2, seed=12)
    transforms = [canvas(s) for s in samples]
    images = _canvas_images(samples, seed=1)
    a = load_pose_model("tiny://vitpose").predict(images, samples, transforms)
    b = load_pose_model({"model": "tiny://vitpose", "flip_test": True}).predict(images, samples, transforms)
    for x, y in zip(a, b):
        for px, py in zip(x, y):
            np.testing.assert_array_equal(px, py)
    assert isinstance(load_pose_model("oracle"), OraclePoseModel)
    with pytest.raises(SpbenchError, match="canvas"):
        load_pose_model("oracle").predict([Image.new("RGB", (SRC_W, SRC_H))], samples[:1], transforms[:1])


def test_coco_head_on_ap10k_warns():
    model, processor = build_tiny_vitpose()
    model.config.id2label = {i: n for i, n in enumerate(COCO17.keypoints)}
    pose = VitPosePoseModel.from_modules(model, processor, name="coco-head")
    samples = make_samples(AP10K, n=1)
    with pytest.warns(UserWarning, match="AP-10K"):
        pose.predict(_canvas_images(samples), samples, [canvas(s) for s in samples])


# -- (g) missing model ---------------------------------------------------------------------------

def test_missing_hub_id_is_a_one_line_error():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    name = "spbench-tests/no-such-vitpose"
    with pytest.raises(SpbenchError) as e:
        load_pose_model(name)
    msg = str(e.value)
    assert name in msg and "pose model" in msg and "\n" not in msg


def test_spread_over_k_is_mean_and_sample_std():
    from spbench.metrics.base import spread_over_k

    out = spread_over_k({"0": {"AP": 10.0}, "1": {"AP": 20.0}, "2": {"AP": 30.0}}, "AP")
    assert out == {"mean_over_k": 20.0, "std_over_k": 10.0}
    assert spread_over_k({"0": {"AP": 5.0}}, "AP") == {"mean_over_k": 5.0, "std_over_k": None}
