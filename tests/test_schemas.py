"""OKS sigma tables held against their sources, and shown to reach the AP that is computed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spbench.canvas import CanvasTransform
from spbench.data.records import Instance, Sample
from spbench.metrics.pose import PoseEvaluator
from spbench.schemas import AP10K, COCO17

# Literal copy of mmpose's AP-10K table, configs/_base_/datasets/ap10k.py at tag v0.29.0 (fixed in
# v0.21, "Fix AP-10K dataset sigmas"; ViTPose and AP-10K's own repository use the same list).
MMPOSE_AP10K_SIGMAS = (
    0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079, 0.072,
    0.062, 0.107, 0.087, 0.089, 0.107, 0.087, 0.089,
)
# The list mmpose shipped before v0.21 (COCO's left/right pairing): must not come back.
PRE_FIX_AP10K_SIGMAS = (
    0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062,
    0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)


def test_ap10k_sigmas_equal_mmposes_fixed_table():
    assert AP10K.sigmas == MMPOSE_AP10K_SIGMAS
    assert AP10K.sigmas != PRE_FIX_AP10K_SIGMAS


def test_ap10k_sigmas_pair_left_and_right_limbs():
    # The fix's meaning, by name: each left keypoint has the sigma of its right twin.
    by_name = dict(zip(AP10K.keypoints, AP10K.sigmas))
    for name, sigma in by_name.items():
        if name.startswith("left_"):
            assert by_name["right_" + name[len("left_"):]] == sigma, name
    assert by_name["left_front_paw"] == 0.062 and by_name["left_back_paw"] == 0.089


def test_coco17_sigmas_equal_pycocotools():
    from pycocotools.cocoeval import Params

    reference = Params(iouType="keypoints").kpt_oks_sigmas  # COCO's own table, in pycocotools
    np.testing.assert_allclose(COCO17.sigmas, reference, rtol=0, atol=1e-12)


AREA = 10_000.0
OKS_TARGET = 0.72  # between the 0.70 and 0.75 thresholds: 5 of the 10 OKS thresholds pass


@pytest.mark.parametrize("k", range(17))
def test_pose_ap_uses_each_keypoints_sigma(k):
    """One GT with only keypoint k labelled and a prediction d pixels off, d chosen by hand from
    mmpose's sigma so OKS = 0.72: AP is 50 (thresholds .50–.70 pass). A sigma 10 % off either way moves
    the OKS across a threshold (the pre-fix table gives 30–70 for six of the keypoints)."""
    sigma = MMPOSE_AP10K_SIGMAS[k]
    # OKS = exp(-d² / (2 · area · (2σ)²))  =>  d = sqrt(-ln(OKS) · 2 · area · 4σ²)
    d = math.sqrt(-math.log(OKS_TARGET) * 2 * AREA * 4 * sigma**2)
    gt = [(0.0, 0.0, 0)] * 17
    gt[k] = (100.0, 100.0, 2)
    inst = Instance("dog", (50.0, 50.0, 100.0, 100.0), AREA, tuple(gt), 1)
    sample = Sample("ap10k-1", 1, "1.jpg", 200, 200, "ap10k", (inst,), "a dog<KPT>")
    pred = np.zeros((17, 3))
    pred[:, 2] = 1.0
    pred[k] = (100.0 + d, 100.0, 1.0)
    evaluator = PoseEvaluator(AP10K)
    evaluator.update(sample, CanvasTransform.fit(200, 200, 200), 0, [pred])
    assert evaluator.compute()["AP"] == pytest.approx(50.0, abs=1e-6)
