"""Perturbed oracles (spbench/metrics/perturbed.py): seeded, image-independent offsets
proportional to each box; AP strictly between 0 and 100 that moves with the sigma table, the OKS
areas, the frame and the ignored ground truth; spec parsing and diagnostic flags."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spbench import schemas
from spbench.canvas import CanvasTransform
from spbench.data.registry import load_split
from spbench.errors import SpbenchError
from spbench.metrics.detection import DetectionEvaluator
from spbench.metrics.detection_models import OracleDetector, PerturbedOracleDetector, load_detector
from spbench.metrics.model_specs import is_diagnostic_model
from spbench.metrics.perturbed import perturbed_seed
from spbench.metrics.pose import PoseEvaluator
from spbench.metrics.pose_models import PerturbedOraclePoseModel, load_pose_model
from spbench.metrics.pose_official import in_frame, official_settings, sample_boxes
from spbench.results.models import model_identity

SPLIT = load_split("sample", "ap10k")
CANVAS = 64
PRE_FIX_AP10K_SIGMAS = (0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
                        0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089)


def canvas(sample) -> CanvasTransform:
    return CanvasTransform.fit(sample.width, sample.height, CANVAS)


def canvas_pose(seed: int, schema=schemas.AP10K, transform=canvas) -> dict:
    """The canvas protocol's pose result of the perturbed oracle on the sample (3 k, as a run)."""
    model, ev = PerturbedOraclePoseModel(seed), PoseEvaluator(schema)
    for s in SPLIT.samples:
        t = transform(s)
        (pred,) = model.predict([None], [s], [t])
        for k in range(3):
            ev.update(s, t, k, pred)
    return ev.compute()


def official_pose(seed: int, schema=schemas.AP10K, frame=None, evaluator=PoseEvaluator) -> dict:
    """The official protocol's pose result (k = 0, original frame unless ``frame`` says another)."""
    settings = official_settings("ap10k")
    model, ev = PerturbedOraclePoseModel(seed), evaluator(schema, official=settings)
    for s in SPLIT.samples:
        scored = in_frame(s, frame(s) if frame else CanvasTransform(s.width, s.height, 1.0, 1.0))
        boxes = sample_boxes(scored, settings)
        (pred,) = model.predict_boxes([None], [scored], [boxes], settings)
        ev.update(scored, CanvasTransform(scored.width, scored.height, 1.0, 1.0), 0, pred, boxes)
    return ev.compute()


class DropsIgnoredGT(PoseEvaluator):
    keeps_ignored_gt = False


def unscaled_area(s):
    t = canvas(s)
    return type("Unscaled", (CanvasTransform,), {"area": lambda self, area: float(area)})(**t.to_dict())


PRE_FIX = dataclasses.replace(schemas.AP10K, sigmas=PRE_FIX_AP10K_SIGMAS)


def headline(result: dict) -> tuple:
    return result["AP"], result["AP75"]


@pytest.mark.parametrize("protocol", [canvas_pose, official_pose])
def test_ap_strictly_between_0_and_100_and_moves_with_the_sigma_table(protocol):
    result = protocol(4)
    assert 0 < result["AP"] < 100 and 0 < result["AP75"] < 100
    assert result["num_instances"] > 0
    other = protocol(4, schema=PRE_FIX)
    assert headline(other) != headline(result)
    assert other["oks_mean"] != pytest.approx(result["oks_mean"], abs=1e-6)


def test_seed_4_is_the_first_seed_whose_ap_answers_every_mutation():
    """Why the expected file uses perturbed-oracle:4: on the shipped sample it is the first seed
    for which every mutation moves an AP value (AP or AP75) in each protocol it applies to: the
    sigma table in both, the unscaled area (canvas), the canvas frame and the dropped ignored
    ground truth (official). oks_mean moves with the first three for any seed."""

    def answers(seed: int) -> dict:
        c, o = canvas_pose(seed), official_pose(seed)
        return {
            "sigmas, canvas": headline(canvas_pose(seed, schema=PRE_FIX)) != headline(c),
            "sigmas, official": headline(official_pose(seed, schema=PRE_FIX)) != headline(o),
            "area": headline(canvas_pose(seed, transform=unscaled_area)) != headline(c),
            "frame": headline(official_pose(seed, frame=canvas)) != headline(o),
            "ignored": headline(official_pose(seed, evaluator=DropsIgnoredGT)) != headline(o),
        }

    assert all(answers(4).values())
    for seed in range(4):
        assert not all(answers(seed).values()), seed


def test_ignored_ground_truth_absorbs_a_miss_in_the_sample():
    """Image 64's hidden sheep (no labelled keypoint, its box round the flock) is kept as ignored
    ground truth: dropping it turns a detection it absorbed into a false positive."""
    kept, dropped = official_pose(4), official_pose(4, evaluator=DropsIgnoredGT)
    assert kept["num_ignored_instances"] == 1 and dropped["num_ignored_instances"] == 0
    assert dropped["AP"] < kept["AP"]


def test_offsets_are_seeded_proportional_to_the_box_and_independent_of_the_image():
    s = next(s for s in SPLIT.samples if len(s.labelled_instances) > 1)
    t = canvas(s)
    a = PerturbedOraclePoseModel(4).predict([None], [s], [t])[0]
    again = PerturbedOraclePoseModel(4).predict([None], [s], [t])[0]
    other = PerturbedOraclePoseModel(5).predict([None], [s], [t])[0]
    assert all(np.array_equal(x, y) for x, y in zip(a, again))
    assert not any(np.allclose(x[:, :2], y[:, :2]) for x, y in zip(a, other))
    for pred, inst in zip(a, s.instances):
        _, _, w, h = t.bbox(inst.bbox)
        moved = np.abs(pred[:, :2] - t.points(inst.xy)) / [w, h]
        assert 0 < moved.max() < 0.2  # a fraction of the box, never zero, never wild
        assert np.all(pred[:, 2] == pred[0, 2]) and 0.3 <= pred[0, 2] <= 1.0  # one seeded score
    # The original frame: offsets of the original box, so stretch maps one onto the other.
    settings = official_settings("ap10k")
    original = PerturbedOraclePoseModel(4).predict_boxes([None], [s], [sample_boxes(s, settings)], settings)[0]
    for pred_canvas, pred_original in zip(a, original):
        np.testing.assert_allclose(pred_canvas[:, :2], t.points(pred_original[:, :2]), atol=1e-9)


def test_perturbed_detector_ap75_strictly_between_and_oracle_still_100():
    def det(detector) -> dict:
        ev = DetectionEvaluator()
        for s in SPLIT.samples:
            t = canvas(s)
            for k in range(2):
                ev.update(s, t, k, detector.predict([None], [s], [t])[0])
        return ev.compute()

    perturbed, oracle = det(PerturbedOracleDetector(4)), det(OracleDetector())
    assert 0 < perturbed["AP75"] < 100 and 0 < perturbed["AP"] < 100
    assert (oracle["AP75"], oracle["AP"]) == (100.0, 100.0)
    # Ground truth and detections: the instances with a labelled keypoint (the hidden sheep is not one).
    labelled = sum(len(s.labelled_instances) for s in SPLIT.samples)
    assert perturbed["num_instances"] == oracle["num_instances"] == 2 * labelled < 2 * sum(len(s.instances) for s in SPLIT.samples)
    assert perturbed["num_detections"] == 2 * labelled


def test_specs_load_and_are_diagnostic():
    assert perturbed_seed("perturbed-oracle") == 0 and perturbed_seed("perturbed-oracle:7") == 7
    assert perturbed_seed("oracle") is None and perturbed_seed("tiny://vitpose") is None
    assert isinstance(load_pose_model("perturbed-oracle:3"), PerturbedOraclePoseModel)
    assert load_pose_model("perturbed-oracle:3").seed == 3
    assert isinstance(load_detector("perturbed-oracle"), PerturbedOracleDetector)
    for spec in ("oracle", "perturbed-oracle", "perturbed-oracle:12"):
        assert is_diagnostic_model(spec) and model_identity(spec) == {"id": spec, "diagnostic": True}
    assert not is_diagnostic_model("tiny://vitpose") and not is_diagnostic_model("org/perturbed-oracle")


@pytest.mark.parametrize("spec", ["perturbed-oracle:", "perturbed-oracle:x", "perturbed-oracle:-1"])
def test_a_malformed_seed_is_a_one_line_error_before_anything_runs(spec):
    from spbench.config import load_profile, resolve
    from spbench.harness import check_scoring

    with pytest.raises(SpbenchError) as e:
        load_pose_model(spec)
    assert "\n" not in str(e.value) and "perturbed-oracle:3" in str(e.value)
    config = resolve(load_profile("tiny"), "ap10k", {}, [f"models.detector={spec}"])
    with pytest.raises(SpbenchError):
        check_scoring(config, ["det"])
    with pytest.raises(SpbenchError):
        check_scoring(resolve(load_profile("tiny"), "ap10k", {}, []), ["pose"], pose_model=spec)
    check_scoring(resolve(load_profile("tiny"), "ap10k", {}, []), ["pose"], pose_model="perturbed-oracle:3")
