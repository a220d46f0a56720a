"""Bootstrap intervals over prompts (spbench.metrics.bootstrap), `spbench compare`, `table --ci` and
`check` with `tolerance: ci`, each held against a hand computation or pycocotools run from scratch."""

import dataclasses
import json

import numpy as np
import pytest

from spbench.errors import SpbenchError
from spbench.metrics.bootstrap import (BootstrapSettings, CocoResampler, EvaluatorResampler, GroupedMeanResampler,
                                       bootstrap_data, draw_indices, interval, percentile_interval,
                                       resampler_for)
from spbench.metrics.coco import coco_ap, coco_objects
from spbench.results.intervals import data_path, write_data
from helpers import quadruped_sample, spbench_in_process


def grouped(values_by_prompt: dict, group_of=lambda s: "all") -> GroupedMeanResampler:
    return GroupedMeanResampler({"kind": "grouped_mean", "key": "score", "images": [
        {"sample_id": s, "k": k, "group": group_of(s), "value": v}
        for s, vs in values_by_prompt.items() for k, v in enumerate(vs if isinstance(vs, list) else [vs])]})


# -- the percentile rule and the interval, by hand ---------------------------------------------------


def test_percentile_rule_by_hand():
    # 5 values sorted 1, 4/3, 3, 14/3, 6; 80 %: the 0.1 and 0.9 quantiles at positions 0.4 and 3.6
    # (linear rule: position q·(n − 1) between the order statistics).
    low, high = percentile_interval([6, 1, 3, 14 / 3, 4 / 3, None], 0.8)
    assert low == pytest.approx(1 + 0.4 * (4 / 3 - 1))
    assert high == pytest.approx(14 / 3 + 0.6 * (6 - 14 / 3))
    assert percentile_interval([None], 0.95) == (None, None)


def test_interval_of_three_prompts_by_hand():
    # Per-prompt values 1, 2, 6; five fixed draws -> means 1, 3, 14/3, 6, 4/3 (hand arithmetic).
    res = grouped({"p0": 1.0, "p1": 2.0, "p2": 6.0})
    draws = np.array([[0, 0, 0], [0, 1, 2], [1, 2, 2], [2, 2, 2], [0, 0, 1]])
    assert res.values(draws) == pytest.approx([1, 3, 14 / 3, 6, 4 / 3])
    block = interval(res, BootstrapSettings(confidence=0.8), draws=draws)
    assert block["low"] == pytest.approx(1 + 0.4 / 3) and block["high"] == pytest.approx(14 / 3 + 0.8)
    assert block["resamples"] == 5 and block["num_prompts"] == 3 and block["num_undefined"] == 0


def test_grouped_mean_counts_repeats_and_drops_absent_groups():
    # CLIP's rule: mean per group, then over the groups present. p0, p1 in group A (10, 20), p2 in B (40).
    res = grouped({"p0": 10.0, "p1": 20.0, "p2": 40.0}, lambda s: "B" if s == "p2" else "A")
    assert res.values(np.array([[0, 0, 1], [2, 2, 0], [0, 1, 2]])) == pytest.approx([40 / 3, 25.0, 27.5])


def test_seeded_draws_are_reproducible_and_the_settings_checked():
    res = grouped({f"p{i}": float(i * i) for i in range(6)})
    a = interval(res, BootstrapSettings(resamples=50, seed=3, confidence=0.9))
    assert a == interval(res, BootstrapSettings(resamples=50, seed=3, confidence=0.9))
    assert (a["low"], a["high"]) == pytest.approx(percentile_interval(res.values(draw_indices(6, 50, 3)), 0.9))
    other = interval(res, BootstrapSettings(resamples=50, seed=4, confidence=0.9))
    assert (a["low"], a["high"]) != (other["low"], other["high"])  # another seed, other draws
    with pytest.raises(SpbenchError, match="confidence"):
        BootstrapSettings.from_config({"evaluation": {"bootstrap_confidence": 1.5}})


# -- COCO AP on resampled images equals pycocotools from scratch --------------------------------------


def _pose_evaluator():
    """Five prompts × 2 images of the quadruped, two species, seeded keypoint noise."""
    from spbench.canvas import CanvasTransform
    from spbench.metrics.pose import PoseEvaluator
    from spbench.schemas import get_schema

    rng = np.random.default_rng(0)
    ev = PoseEvaluator(get_schema("ap10k"))
    for i in range(5):
        s = quadruped_sample(i, dx=3.0 * i)
        if i % 2:  # a second species
            s = dataclasses.replace(s, instances=(dataclasses.replace(s.instances[0], category="cat"),))
        for k in range(2):
            xy = s.instances[0].xy + rng.normal(0, 1.5 + 2 * i, s.instances[0].xy.shape)
            pred = np.concatenate([xy, rng.uniform(0.3, 1, (len(xy), 1))], axis=1)
            ev.update(s, CanvasTransform(s.width, s.height, 1.0, 1.0), k, [pred])
    return ev


def _from_scratch(data: dict, prompts, indices, key: str):
    """pycocotools on a data set in which each drawn prompt's images are new images."""
    images = []
    for i in np.sort(indices):
        for im in (im for im in data["images"] if im["sample_id"] == prompts[i]):
            images.append((f"{len(images)}", im["gts"], im["dets"]))
    gt, dt = coco_objects(images)
    return coco_ap(gt, dt, data["iou_type"], list(range(1, len(images) + 1)), data["use_categories"],
                   data.get("sigmas"))[key]


def test_pose_ap_resample_equals_pycocotools_on_the_duplicated_images():
    ev = _pose_evaluator()
    res = resampler_for(ev, "AP")
    assert isinstance(res, CocoResampler) and res.prompts == tuple(f"test-{i:03d}" for i in range(5))
    assert res.value(res.identity()) == ev.compute()["AP"]
    for draw in ([0, 0, 0, 1, 4], [3, 3, 1, 1, 2], [2, 4, 4, 4, 0], [1, 3, 1, 3, 3]):  # the last: one species only
        assert res.value(draw) == pytest.approx(_from_scratch(res.data, res.prompts, draw, "AP"), abs=1e-9)
    # The generic path (the evaluator's own compute() on relabelled prompts) agrees.
    generic = EvaluatorResampler(ev, "AP")
    for draw in ([0, 0, 0, 1, 4], [2, 4, 4, 4, 0]):
        assert generic.value(draw) == pytest.approx(res.value(draw), abs=1e-9)


def test_detection_ap75_resample_equals_pycocotools_on_the_duplicated_images():
    rng = np.random.default_rng(1)
    images = []
    for s in range(8):
        for k in range(2):
            gts, dets = [], []
            for _ in range(int(rng.integers(1, 3))):
                cat = ["cat", "dog", "bird"][int(rng.integers(0, 3))]
                box = list(rng.uniform(0, 50, 4) + [0, 0, 10, 10])
                gts.append({"category": cat, "bbox": box, "area": box[2] * box[3]})
                dets += [{"category": cat, "bbox": list(np.array(box) + rng.normal(0, 3, 4)), "score": float(rng.random())}
                         for _ in range(int(rng.integers(0, 3)))]
            images.append({"sample_id": f"s{s}", "k": k, "gts": gts, "dets": dets})
    data = {"kind": "coco", "key": "AP75", "iou_type": "bbox", "use_categories": True, "sigmas": None, "empty": 0.0,
            "images": images}
    res = CocoResampler(data)
    for draw in rng.integers(0, 8, (6, 8)):
        assert res.value(draw) == pytest.approx(_from_scratch(data, res.prompts, draw, "AP75"), abs=1e-9)
    no_detections = [p for p in range(8) if not any(im["dets"] for im in images if im["sample_id"] == f"s{p}")]
    if no_detections:  # a resample without a detection scores 0, as DetectionEvaluator
        assert res.value([no_detections[0]] * 8) == 0.0


def test_clip_generic_path_agrees_and_fid_without_reference_is_skipped_with_its_reason():
    from spbench.metrics.clip_score import ClipScoreEvaluator
    from spbench.metrics.fid import FidEvaluator

    ev = ClipScoreEvaluator("category")
    for i, (group, cos) in enumerate([("dog", 0.2), ("dog", 0.3), ("cat", 0.25), ("cat", -0.1), ("bird", 0.4)]):
        for k in range(2):
            ev.update(f"s{i}", k, group, cos + 0.01 * k)
    res = resampler_for(ev, "score")
    assert isinstance(res, GroupedMeanResampler)
    assert res.value(res.identity()) == pytest.approx(ev.compute()["score"])
    draws = draw_indices(5, 20, 0)
    assert EvaluatorResampler(ev, "score").values(draws) == pytest.approx(res.values(draws))
    # FID resamples its stored features (tests/test_fid_bootstrap.py); without reference statistics it cannot.
    assert "no reference statistics" in bootstrap_data(FidEvaluator("tiny", 4), "fid")


# -- spbench compare ----------------------------------------------------------------------------------


def _run(root, name, values: dict | None, pose_data: dict | None = None, split_hash="h1", seed=0, old=False):
    """A scored run folder built by hand: CLIP per-image values (one image per prompt) and pose data;
    ``old``: CLIP only in per_image.jsonl, as runs scored before the bootstrap data existed."""
    folder = root / name
    (folder / "bootstrap").mkdir(parents=True)
    metrics = {}
    if values is not None:
        clip = {"format": 1, "kind": "grouped_mean", "key": "score",
                "images": [{"sample_id": s, "k": 0, "group": "all", "value": v} for s, v in values.items()]}
        if old:
            (folder / "per_image.jsonl").write_text("".join(json.dumps(
                {"metric": "clip", "sample_id": s, "k": 0, "category": "all", "score": v}) + "\n" for s, v in values.items()))
        else:
            write_data(data_path(folder, "clip"), clip)
        metrics["clip"] = {"score": float(np.mean(list(values.values()))), "bootstrap": {"key": "score", "low": 0, "high": 1}}
    if pose_data is not None:
        write_data(data_path(folder, "pose"), pose_data)
        metrics["pose"] = {"AP": CocoResampler(pose_data).value(np.arange(5)), "bootstrap": {"key": "AP", "low": 0, "high": 1}}
    (folder / "result.json").write_text(json.dumps({
        "run": name, "dataset": {"name": "sample", "split": "ap10k", "hash": split_hash},
        "method": {"name": name, "variant": None}, "tiny": True, "metrics": metrics,
        "evaluation": {"clip": {"model": "tiny://clip"}, "pose": {"model": "m", "protocol": "canvas"}},
        "seeds": {"base": seed, "images_per_prompt": 1, "scheme": "s"}, "config": {}}))
    return folder


def test_compare_paired_difference_on_the_same_draws(tmp_path):
    from spbench.results.compare import compare_runs

    a = {"p0": 1.0, "p1": 2.0, "p2": 6.0, "p3": 4.0}
    b = {"p0": 2.0, "p1": 2.0, "p2": 9.0, "p3": 3.0}
    pose_a = resampler_for(_pose_evaluator(), "AP").data
    rng = np.random.default_rng(5)
    pose_b = json.loads(json.dumps(pose_a))
    for im in pose_b["images"]:  # B: every prediction moved a little more
        for d in im["dets"]:
            d["keypoints"] = [v + (rng.normal(0, 2) if j % 3 != 2 else 0) for j, v in enumerate(d["keypoints"])]
    ra, rb = _run(tmp_path, "A", a, pose_a), _run(tmp_path, "B", b, pose_b)
    c = compare_runs(ra, rb, resamples=20, seed=2, confidence=0.9)
    # A run scored before the bootstrap data existed compares on CLIP from per_image.jsonl alone.
    older = compare_runs(_run(tmp_path, "A-old", a, old=True), rb, ["clip"], resamples=20, seed=2, confidence=0.9)
    assert older.rows[0].result == next(r for r in c.rows if r.key == "clip").result
    clip, pose = (next(r for r in c.rows if r.key == k).result for k in ("clip", "pose"))
    # CLIP (one group): each draw's B − A is the mean of the per-prompt differences it drew.
    diffs = np.array([1.0, 0.0, 3.0, -1.0])[draw_indices(4, 20, 2)].mean(axis=1)
    assert clip["difference"] == pytest.approx(0.75)  # (1 + 0 + 3 − 1) / 4
    assert (clip["low"], clip["high"]) == pytest.approx(tuple(np.quantile(diffs, [0.05, 0.95])))
    # Pose: from-scratch pycocotools on each run's duplicated images, the same draws for both.
    prompts = tuple(f"test-{i:03d}" for i in range(5))
    draws = draw_indices(5, 20, 2)
    ref = [_from_scratch(pose_b, prompts, d, "AP") - _from_scratch(pose_a, prompts, d, "AP") for d in draws]
    assert (pose["low"], pose["high"]) == pytest.approx(tuple(np.quantile(ref, [0.05, 0.95])), abs=1e-8)
    assert next(r for r in c.rows if r.key == "clip").verdict in ("no clear difference", "B better")


def test_compare_refuses_other_prompts_or_seeds_in_one_line(tmp_path):
    a = _run(tmp_path, "A", {"p0": 1.0, "p1": 2.0})
    other_split = _run(tmp_path, "B", {"p0": 1.0, "p1": 2.0}, split_hash="h2")
    other_seed = _run(tmp_path, "C", {"p0": 1.0, "p1": 2.0}, seed=7)
    for b, words in ((other_split, "different prompts"), (other_seed, "different seeds: base seed 0 (A) vs 7 (B)")):
        done = spbench_in_process("compare", a, b)
        assert done.returncode == 2 and words in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = spbench_in_process("compare", a, _run(tmp_path, "D", {"p0": 1.5, "p1": 2.0}), "--resamples", "20")
    assert done.returncode == 0 and "B − A" in done.stdout and "CLIP-Score" in done.stdout


# -- table --ci and check with tolerance: ci ----------------------------------------------------------


def _record(tmp_path, bootstrap: dict | None):
    (tmp_path / "r").mkdir()
    metrics = {"pose": {"AP": 65.0, **({"bootstrap": bootstrap} if bootstrap else {})}, "fid": {"fid": 20.0}}
    (tmp_path / "r" / "result.json").write_text(json.dumps({
        "run": "r", "dataset": {"name": "ap10k", "split": "val-split1"}, "method": {"name": "controlnet", "variant": None},
        "tiny": False, "metrics": metrics, "evaluation": {"pose": {"model": "m"}},
        "config": {"profile": {"name": "paper", "tiny": False}}, "provenance": {"date": "2026-01-01T00:00:00+00:00"}}))
    return tmp_path


def test_table_ci_shows_the_recorded_interval(tmp_path):
    import io

    import pandas as pd

    from spbench.results.load import load_records
    from spbench.tables.render import render

    records = load_records([_record(tmp_path, {"key": "AP", "low": 61.234, "high": 70.4})])
    shown = render("1", records, "md", ci=True)
    row = next(line for line in shown.splitlines() if "| ControlNet |" in line)  # AP-10K's comes first
    assert "44.25 / 65.00 [61.23, 70.40] (+20.75)" in row and "19.40 / 20.00 (+0.60)" in row  # FID: no interval
    assert "[61.23, 70.40]" not in render("1", records, "md")
    csv = pd.read_csv(io.StringIO(render("1", records, "csv", ci=True)))
    assert csv[csv["Method"] == "ControlNet"].iloc[0]["pose.AP ci_high"] == pytest.approx(70.4)
    assert "pose.AP ci_low" not in pd.read_csv(io.StringIO(render("1", records, "csv"))).columns


@pytest.mark.parametrize("value,direction,status,code", [
    (63.0, "both", "ok", 0), (72.0, "both", "regressed", 1), (60.0, "both", "regressed", 1),
    (72.0, "higher", "regressed", 1), (60.0, "higher", "improved", 0), (66.0, "higher", "ok", 0),
    (60.0, "lower", "regressed", 1), (72.0, "lower", "improved", 0),
])
def test_check_with_an_interval(tmp_path, value, direction, status, code):
    results = _record(tmp_path, {"key": "AP", "low": 61.0, "high": 70.0})
    exp = tmp_path / "expected.yaml"
    exp.write_text(json.dumps({"version": 1, "expected": [{"dataset": "ap10k", "method": "controlnet", "metrics": {
        "pose.AP": {"value": value, "tolerance": "ci", "direction": direction}}}]}))
    done = spbench_in_process("check", exp, "--results", results)
    assert done.returncode == code and status in done.stdout and "ci [61, 70]" in done.stdout


def test_check_ci_without_an_interval_or_on_another_key(tmp_path):
    results = _record(tmp_path, None)
    exp = tmp_path / "expected.yaml"
    exp.write_text(json.dumps({"version": 1, "expected": [{"dataset": "ap10k", "method": "controlnet", "metrics": {
        "pose.AP": {"value": 65.0, "tolerance": "ci"}}}]}))
    done = spbench_in_process("check", exp, "--results", results)
    assert done.returncode == 1 and "missing" in done.stdout and "no bootstrap interval" in done.stdout
    exp.write_text(json.dumps({"version": 1, "expected": [{"dataset": "ap10k", "method": "controlnet", "metrics": {
        "pose.AP75": {"value": 65.0, "tolerance": "ci"}}}]}))
    done = spbench_in_process("check", exp, "--results", results)
    assert done.returncode == 2 and "headline" in done.stderr


# -- scoring records the interval and keeps its data ----------------------------------------------------


def test_scoring_records_the_interval_next_to_the_headline(tmp_path, monkeypatch):
    import hashlib

    from spbench.results.intervals import load_resampler, read_data

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    done = spbench_in_process("run", "--method", "real", "--dataset", "sample", "--profile", "tiny", "--out", tmp_path,
                              "--metrics", "pose", "--pose-model", "perturbed-oracle:4",
                              "--set", "evaluation.bootstrap_resamples=30")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "sample-ap10k-real-tiny"
    record = json.loads((folder / "result.json").read_text())
    pose = record["metrics"]["pose@perturbed-oracle-4"]
    block = pose["bootstrap"]
    assert block["key"] == "AP" and block["resamples"] == 30 and block["num_prompts"] == 9
    stored = data_path(folder, "pose@perturbed-oracle-4")
    assert block["data"]["sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
    res = load_resampler(folder, "pose@perturbed-oracle-4", record)
    assert res.value(res.identity()) == pose["AP"]  # the stored data reproduce the headline
    assert interval(res, BootstrapSettings(30, 0, 0.95))["low"] == block["low"]
    assert read_data(stored)["kind"] == "coco"


@pytest.mark.parametrize("setting", ["evaluation.bootstrap_confidence=1.5", "evaluation.bootstrap_resamples=-1"])
def test_bad_bootstrap_settings_stop_before_any_work(tmp_path, setting):
    done = spbench_in_process("run", "--method", "real", "--dataset", "sample", "--profile", "tiny", "--out", tmp_path,
                              "--set", setting)
    assert done.returncode == 2 and setting.split("=")[0] in done.stderr and not any(tmp_path.iterdir())
