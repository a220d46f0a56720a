"""The official pose protocol, step by step, against values worked out by hand (and pycocotools):
heatmap decoding (quarter-pixel shift, flip-back shift, DARK-UDP), box cleaning and crop windows,
the crop, OKS-NMS, ignored ground truth, scoring in the original frame, and the CLI end to end."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from PIL import Image

from spbench.canvas import CanvasTransform
from spbench.data.records import Instance, Sample
from spbench.errors import SpbenchError
from spbench.metrics.heatmap_decode import decode_default, decode_udp, flip_back
from spbench.metrics.oks_nms import oks_nms, pose_overlap
from spbench.metrics.pose import PoseEvaluator
from spbench.metrics.pose_models import OraclePoseModel, VitPosePoseModel, build_tiny_vitpose
from spbench.metrics.pose_official import OFFICIAL, official_settings, sample_boxes, to_original_size
from spbench.metrics.topdown_boxes import CropBox, clean_box, crop_window, topdown_boxes
from spbench.metrics.topdown_crop import crop, crop_matrix
from spbench.schemas import AP10K

AP10K_OFFICIAL = OFFICIAL["ap10k"]
HUMANART_OFFICIAL = OFFICIAL["coco17"]


# -- heatmap decoding ----------------------------------------------------------------------------

def _peaked_heatmap(h=64, w=48, x=10, y=20) -> np.ndarray:
    """A peak of 1.0 at (x, y); right neighbour 0.5 > left 0.2, upper 0.6 > lower 0.3."""
    hm = np.zeros((h, w), dtype=np.float32)
    hm[y, x] = 1.0
    hm[y, x + 1], hm[y, x - 1] = 0.5, 0.2
    hm[y - 1, x], hm[y + 1, x] = 0.6, 0.3
    return hm


def test_default_decoding_quarter_shift_and_window_transform():
    hm = np.zeros((1, 3, 64, 48), dtype=np.float32)
    hm[0, 0] = _peaked_heatmap(x=10, y=20)
    hm[0, 1] = _peaked_heatmap(x=1, y=20)  # column 1: mmpose's strict 1 < x leaves it unshifted
    # channel 2 all zero: maximum <= 0 -> (-1, -1), score 0
    box = CropBox(100.0, 200.0, 96.0, 128.0)  # 2 image px per heatmap px in x and y
    out = decode_default(hm, [box])[0]
    # (10 + 0.25, 20 - 0.25) -> x = 10.25 * 2 + 100 - 48, y = 19.75 * 2 + 200 - 64
    assert out[0].tolist() == [72.5, 175.5, 1.0]
    assert out[1].tolist() == [1 * 2 + 52.0, 20 * 2 + 136.0, 1.0]
    assert out[2].tolist() == [-1 * 2 + 52.0, -1 * 2 + 136.0, 0.0]


def test_flip_back_swaps_mirrors_and_shifts_one_column_right():
    hm = np.zeros((1, 3, 4, 6), dtype=np.float32)
    hm[0, 0, 2, 1] = 1.0  # left keypoint, column 1
    hm[0, 2, 0] = [7, 0, 0, 0, 0, 3]  # unpaired keypoint
    shifted = flip_back(hm, [(0, 1)], shift=True)
    # channel 0 -> channel 1, column 1 -> mirrored 6 - 1 - 1 = 4 -> shifted 5
    assert np.argwhere(shifted[0, 1]).tolist() == [[2, 5]] and not shifted[0, 0].any()
    # [7 0 0 0 0 3] mirrored [3 0 0 0 0 7], shifted right, column 0 keeps its value: [3 3 0 0 0 0]
    assert shifted[0, 2, 0].tolist() == [3, 3, 0, 0, 0, 0]
    assert flip_back(hm, [(0, 1)], shift=False)[0, 2, 0].tolist() == [3, 0, 0, 0, 0, 7]
    assert hm[0, 2, 0].tolist() == [7, 0, 0, 0, 0, 3]  # input untouched


def _gaussian(cx, cy, sigma=2.0, h=64, w=48) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2)).astype(np.float32)


def test_udp_decoding_recovers_the_gaussian_centre():
    hm = np.stack([_gaussian(20, 30), _gaussian(20.3, 30.6)])[None]
    box = CropBox(47.0, 63.0, 94.0, 126.0)  # x / (48 - 1) * 94 + 47 - 47 = 2x; y / 63 * 126 = 2y
    out = decode_udp(hm, [box])[0]
    assert out[0, :2] == pytest.approx([40.0, 60.0], abs=1e-4)
    assert out[1, :2] == pytest.approx([40.6, 61.2], abs=0.05)  # DARK recovers the sub-pixel centre
    assert out[0, 2] == pytest.approx(1.0) and out[1, 2] == pytest.approx(float(hm[0, 1].max()))


# -- boxes and crops -----------------------------------------------------------------------------

def test_box_cleaning_by_hand():
    # 80x60 image, box sticking out to the left: x1 = 0, x2 = min(79, 0 + 99) = 79, y2 = min(59, 5 + 49)
    assert clean_box((-10, 5, 100, 50), 80, 60, 100.0, "mmpose0") == (0.0, 5.0, 79.0, 49.0)
    # 1.x: x2 = clip(-10 + 100, 0, 79) = 79, y2 = clip(55, 0, 59) = 55
    assert clean_box((-10, 5, 100, 50), 80, 60, 100.0, "mmpose1") == (0.0, 5.0, 79.0, 50.0)
    assert clean_box((10, 5, 20, 20), 80, 60, 0.0, "mmpose0") is None  # 0.x drops area 0
    assert clean_box((10, 5, 20, 20), 80, 60, 0.0, "mmpose1") == (10.0, 5.0, 20.0, 20.0)
    assert clean_box((100, 5, 20, 20), 80, 60, 10.0, "mmpose0") is None  # right of the image
    assert clean_box((100, 5, 20, 20), 80, 60, 10.0, "mmpose1") is None
    assert clean_box((10, 5, 1, 20), 80, 60, 10.0, "mmpose0") is None  # w - 1 = 0
    assert clean_box((10, 5, 1, 20), 80, 60, 10.0, "mmpose1") == (10.0, 5.0, 1.0, 20.0)
    with pytest.raises(SpbenchError):
        clean_box((0, 0, 1, 1), 8, 8, 1.0, "mmpose9")


def test_crop_window_padding_and_aspect_by_hand():
    wide = crop_window(0.0, 5.0, 79.0, 49.0, aspect=0.75)  # 79 > 0.75 * 49: h = 79 / 0.75
    assert (wide.cx, wide.cy) == (39.5, 29.5)
    assert (wide.w, wide.h) == pytest.approx((79 * 1.25, 79 / 0.75 * 1.25), rel=1e-6)
    tall = crop_window(10.0, 10.0, 19.0, 39.0, aspect=0.75)  # 19 < 29.25: w = 39 * 0.75
    assert (tall.cx, tall.cy, tall.w, tall.h) == (19.5, 29.5, 36.5625, 48.75)
    assert tall.area == 36.5625 * 48.75


def _inst(bbox, kps, area=100.0, ann_id=1, category="dog") -> Instance:
    return Instance(category, tuple(float(v) for v in bbox), float(area), tuple(tuple(k) for k in kps), ann_id)


def test_instances_without_labelled_keypoints_get_no_window():
    labelled = _inst((10, 10, 20, 40), [(15.0, 20.0, 2)] + [(0.0, 0.0, 0)] * 16)
    empty = _inst((10, 10, 20, 40), [(0.0, 0.0, 0)] * 17)
    at_origin = _inst((10, 10, 20, 40), [(0.0, 0.0, 2)] + [(0.0, 0.0, 0)] * 16)  # 1.x: max(xy) <= 0
    boxes0 = topdown_boxes([labelled, empty, at_origin], 100, 100, "mmpose0", 0.75)
    boxes1 = topdown_boxes([labelled, empty, at_origin], 100, 100, "mmpose1", 0.75)
    # 0.x: [10, 10, 19, 39] -> centre (19.5, 29.5), w = 39 * 0.75 = 29.25, times 1.25
    assert boxes0[0] == CropBox(19.5, 29.5, 36.5625, 48.75) and boxes0[1] is None and boxes0[2] is not None
    assert boxes1[0] == CropBox(20.0, 30.0, 37.5, 50.0) and boxes1[1] is None and boxes1[2] is None


def test_crop_of_an_input_sized_window_is_the_image_region():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(300, 300, 3), dtype=np.uint8)
    box = CropBox(150.0, 150.0, 192.0, 256.0)  # scale 1: input pixel (x, y) = image (x + 54, y + 22)
    assert np.array_equal(crop(img, box, (192, 256), udp=False), img[22:278, 54:246])
    # UDP: the window's edges [cx - w/2, cx + w/2] go to input columns 0 and 191
    m = crop_matrix(CropBox(100.0, 80.0, 96.0, 128.0), (192, 256), udp=True)
    corners = m @ np.array([[52.0, 148.0], [16.0, 144.0], [1.0, 1.0]])
    assert corners.T.reshape(-1).tolist() == pytest.approx([0.0, 0.0, 191.0, 255.0])


# -- OKS-NMS -------------------------------------------------------------------------------------

def test_pose_overlap_and_nms_by_hand():
    sigmas = [0.1, 0.1]  # (2 sigma)^2 = 0.04
    a = np.array([[0.0, 0.0], [10.0, 0.0]])
    # d^2 = 4, mean area 100: e = 4 / 0.04 / 100 / 2 = 0.5
    assert pose_overlap(a, (a + [2.0, 0.0])[None], 100.0, [100.0], sigmas)[0] == pytest.approx(math.exp(-0.5))
    poses = np.stack([a, a + [0.5, 0.0], a + [20.0, 0.0]])  # e = 0.25 / 0.04 / 100 / 2 -> OKS 0.969 > 0.9
    assert oks_nms(poses, [0.5, 0.9, 0.7], [100.0] * 3, 0.9, sigmas) == [1, 2]
    assert oks_nms(poses, [0.5, 0.9, 0.7], [100.0] * 3, 0.99, sigmas) == [1, 2, 0]


# -- COCO evaluation ---------------------------------------------------------------------------

def _kps(x0, y0, rng) -> list[tuple[float, float, int]]:
    return [(float(x0 + rng.uniform(5, 55)), float(y0 + rng.uniform(5, 55)), 2) for _ in range(17)]


def _pred(keypoints, score, shift=0.0) -> np.ndarray:
    xy = np.array([[x, y] for x, y, _ in keypoints]) + shift
    return np.concatenate([xy, np.full((len(xy), 1), score)], axis=1)


def _official(sample, k, preds) -> PoseEvaluator:
    ev = PoseEvaluator(AP10K, official=AP10K_OFFICIAL)
    ev.update(sample, CanvasTransform(sample.width, sample.height, 1.0, 1.0), k, preds, sample_boxes(sample, AP10K_OFFICIAL))
    return ev


def _pycocotools_ap(instances, dets) -> float:
    """AP (percent) of one image from pycocotools, GT and detections written out by hand."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    anns = [{"id": n + 1, "image_id": 1, "category_id": 1, "bbox": list(i.bbox), "area": i.area, "iscrowd": 0,
             "keypoints": [v for x, y, f in i.keypoints for v in ((x, y, f) if f else (0, 0, 0))],
             "num_keypoints": i.num_visible} for n, i in enumerate(instances)]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": 1}], "annotations": anns, "categories": [{"id": 1, "name": "dog"}]}
        gt.createIndex()
        dt = gt.loadRes([{"image_id": 1, "category_id": 1, "keypoints": p[:, :3].reshape(-1).tolist(),
                          "score": float(p[0, 2])} for p in dets])
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.array(AP10K.sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return round(float(ev.stats[0]) * 100, 10)


def test_ignored_ground_truth_absorbs_a_detection():
    """A (labelled), B (no labelled keypoint), C (labelled). C's prediction lands on B with the
    top score. Kept as ignored GT, B absorbs it: A found, C missed -> AP = 51/101. Dropped (as the
    canvas protocol does), it is a false positive ranked first -> AP = 0.5 * 51/101."""
    rng = np.random.default_rng(1)
    a = _inst((10, 10, 60, 60), _kps(10, 10, rng), 2000.0, 1)
    b = _inst((300, 200, 60, 60), [(0.0, 0.0, 0)] * 17, 2000.0, 2)
    c = _inst((10, 300, 60, 60), _kps(10, 300, rng), 2000.0, 3)
    sample = Sample("ap10k-ign", 1, "x.jpg", 600, 400, "ap10k", (a, b, c), "a dog<KPT>")
    on_b = _pred([(310.0 + i, 210.0 + i, 2) for i in range(17)], 0.9)
    preds = [_pred(a.keypoints, 0.5), None, on_b]
    result = _official(sample, 0, preds).compute()
    assert result["AP"] == round(51 / 101 * 100, 10) == _pycocotools_ap([a, b, c], [preds[0], on_b])
    assert result["num_ignored_instances"] == 1 and result["num_undetected_instances"] == 1
    assert _pycocotools_ap([a, c], [preds[0], on_b]) == round(0.5 * 51 / 101 * 100, 10)
    assert sample_boxes(sample, AP10K_OFFICIAL)[1] is None  # the official pipeline predicts nothing for B


def test_oks_nms_suppresses_a_near_duplicate():
    """A, B, C labelled; B's prediction duplicates A's (0.5 px off) at a score between A's and C's.
    NMS drops it: TP, TP, B missed -> AP = 67/101. Kept (no NMS): TP, FP, TP -> (34 + 33 * 2/3) / 101."""
    rng = np.random.default_rng(2)
    a = _inst((10, 10, 60, 60), _kps(10, 10, rng), 2000.0, 1)
    b = _inst((300, 10, 60, 60), _kps(300, 10, rng), 2000.0, 2)
    c = _inst((10, 300, 60, 60), _kps(10, 300, rng), 2000.0, 3)
    sample = Sample("ap10k-nms", 1, "x.jpg", 600, 400, "ap10k", (a, b, c), "a dog<KPT>")
    preds = [_pred(a.keypoints, 0.9), _pred(a.keypoints, 0.8, shift=0.5), _pred(c.keypoints, 0.7)]
    ev = _official(sample, 0, preds)
    result = ev.compute()
    assert result["AP"] == round(67 / 101 * 100, 10) == _pycocotools_ap([a, b, c], [preds[0], preds[2]])
    assert result["num_suppressed_detections"] == 1
    assert [i["suppressed"] for i in ev.records()[0]["instances"]] == [False, True, False]
    canvas = PoseEvaluator(AP10K)
    canvas.update(sample, CanvasTransform(600, 400, 1.0, 1.0), 0, preds)
    assert canvas.compute()["AP"] == round(56 / 101 * 100, 10) == _pycocotools_ap([a, b, c], preds)


def test_scored_in_the_original_frame_with_unscaled_areas():
    """Predictions 3 px off in a 1600x1200 original: with the original areas (official) the
    OKS stays above 0.95 (AP 100); with the areas of a 256 canvas it would not."""
    rng = np.random.default_rng(3)
    insts = (_inst((100, 100, 600, 500), [(float(rng.uniform(150, 650)), float(rng.uniform(150, 550)), 2) for _ in range(17)], 180000.0, 1),
             _inst((800, 500, 600, 500), [(float(rng.uniform(850, 1350)), float(rng.uniform(550, 950)), 2) for _ in range(17)], 180000.0, 2))
    sample = Sample("ap10k-big", 1, "x.jpg", 1600, 1200, "ap10k", insts, "a dog<KPT>")
    exact = OraclePoseModel().predict_boxes([None], [sample], [sample_boxes(sample, AP10K_OFFICIAL)], AP10K_OFFICIAL)[0]
    assert _official(sample, 0, exact).compute()["AP"] == 100.0
    off = [p + [3.0, 3.0, 0.0] for p in exact]
    official = _official(sample, 0, off).compute()["AP"]
    t = CanvasTransform.fit(1600, 1200, 256)
    shrunk = [Instance(i.category, i.bbox, t.area(i.area), i.keypoints, i.annotation_id) for i in insts]
    assert official == _pycocotools_ap(insts, off) == 100.0
    assert _pycocotools_ap(shrunk, off) < 100.0


def test_official_updates_need_windows_and_keep_states_apart():
    sample = Sample("ap10k-x", 1, "x.jpg", 100, 100, "ap10k", (_inst((10, 10, 20, 40), [(15.0, 20.0, 2)] * 17),), "a<KPT>")
    ev = PoseEvaluator(AP10K, official=AP10K_OFFICIAL)
    with pytest.raises(SpbenchError, match="crop window"):
        ev.update(sample, CanvasTransform(100, 100, 1.0, 1.0), 0, [None])
    with pytest.raises(SpbenchError, match="missing prediction"):
        PoseEvaluator(AP10K).update(sample, CanvasTransform(100, 100, 1.0, 1.0), 0, [None])
    with pytest.raises(SpbenchError, match="cannot merge"):
        ev.merge([PoseEvaluator(AP10K).state()])
    with pytest.raises(SpbenchError, match="--protocol canvas"):
        official_settings("mpii")


# -- the ViTPose path ----------------------------------------------------------------------------

def _stub_vitpose(heatmap: np.ndarray, flip_test: bool) -> VitPosePoseModel:
    """The tiny ViTPose with its forward replaced: every crop gets ``heatmap`` [K, 64, 48]."""
    import torch

    model, processor = build_tiny_vitpose(17)
    fixed = torch.from_numpy(heatmap)

    def forward(pixel_values, **kwargs):
        assert tuple(pixel_values.shape[1:]) == (3, 256, 192)
        return SimpleNamespace(heatmaps=fixed.expand(len(pixel_values), *fixed.shape))

    model.forward = forward
    return VitPosePoseModel.from_modules(model, processor, name="stub", flip_test=flip_test)


def test_vitpose_official_path_crops_flips_and_decodes_by_hand():
    hm = np.zeros((17, 64, 48), dtype=np.float32)
    hm[0] = _peaked_heatmap(x=10, y=20)
    inst = _inst((20, 10, 60, 40), [(50.0, 30.0, 2)] * 17)
    sample = Sample("ap10k-v", 1, "x.jpg", 200, 100, "ap10k", (inst,), "a dog<KPT>")
    image = to_original_size(Image.new("RGB", (64, 64), (90, 120, 30)), sample)
    assert image.size == (200, 100)
    boxes = [sample_boxes(sample, AP10K_OFFICIAL)]
    # 0.x box [20, 10, 59, 39]: centre (49.5, 29.5), h = 59 / 0.75, window (73.75, 98.33)
    cx, cy, w, h = 49.5, 29.5, 59 * 1.25, 59 / 0.75 * 1.25

    plain = _stub_vitpose(hm, flip_test=False).predict_boxes([image], [sample], boxes, AP10K_OFFICIAL)[0][0]
    assert plain[0] == pytest.approx([10.25 * w / 48 + cx - w / 2, 19.75 * h / 64 + cy - h / 2, 1.0], rel=1e-5)

    # Flip test: keypoint 0 keeps its peak at half height; keypoint 1 (its mirror pair) gets the
    # peak mirrored to column 47 - 10 = 37, shifted to 38, where the left neighbour (0.25, from the
    # old right one) beats the right (0.1): x = 38 - 0.25.
    flipped = _stub_vitpose(hm, flip_test=True).predict_boxes([image], [sample], boxes, AP10K_OFFICIAL)[0][0]
    assert flipped[0] == pytest.approx([10.25 * w / 48 + cx - w / 2, 19.75 * h / 64 + cy - h / 2, 0.5], rel=1e-5)
    assert flipped[1] == pytest.approx([37.75 * w / 48 + cx - w / 2, 19.75 * h / 64 + cy - h / 2, 0.5], rel=1e-5)


def test_vitpose_official_path_runs_on_the_tiny_model_and_checks_the_frame():
    from spbench.metrics.pose_models import load_pose_model

    model = load_pose_model("tiny://vitpose")
    inst = _inst((20, 10, 60, 40), [(50.0, 30.0, 2)] * 17)
    sample = Sample("ap10k-t", 1, "x.jpg", 200, 100, "ap10k", (inst, _inst((0, 0, 5, 5), [(0.0, 0.0, 0)] * 17)), "a<KPT>")
    boxes = [sample_boxes(sample, AP10K_OFFICIAL)]
    out = model.predict_boxes([Image.new("RGB", (200, 100))], [sample], boxes, AP10K_OFFICIAL)[0]
    assert out[0].shape == (17, 3) and np.isfinite(out[0]).all() and out[1] is None
    out = model.predict_boxes([Image.new("RGB", (200, 100))], [sample], boxes, HUMANART_OFFICIAL)[0]
    assert out[0].shape == (17, 3) and np.isfinite(out[0]).all()
    with pytest.raises(SpbenchError, match="original size"):
        model.predict_boxes([Image.new("RGB", (64, 64))], [sample], boxes, AP10K_OFFICIAL)


# -- end to end ----------------------------------------------------------------------------------

@pytest.mark.parametrize("split", ["ap10k", "humanart"])
def test_oracle_scores_100_under_the_official_protocol(tmp_path, split):
    from typer.testing import CliRunner

    from spbench.cli import app

    args = ["run", "--method", "real", "--dataset", "sample", "--split", split, "--profile", "tiny", "--limit", "3",
            "--out", str(tmp_path), "--pose-model", "oracle", "--protocol", "official"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(next(tmp_path.glob("*/result.json")).read_text())
    key = next(k for k in record["metrics"] if k.split("@")[0] == "pose")  # "pose@oracle": a diagnostic model
    pose = record["metrics"][key]
    assert pose["AP"] == 100.0 and pose["protocol"] == "official" and list(pose["per_k"]) == ["0"]
    described = record["evaluation"][key]
    assert described["protocol"] == "official" and described["frame"] == "original image (the dataset image itself)"
    assert "OKS-NMS at 0.9" in described["nms"] and "k in [0]" in described["images"]
    assert ("UDP" in described["decoding"]) == (split == "humanart")
