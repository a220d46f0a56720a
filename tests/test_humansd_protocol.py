"""--protocol humansd: HumanSD's AP/AR, CAP, PCE, FID, KID and CLIPSIM, each checked against a
hand-computed case, pycocotools or torchmetrics, and the protocol end to end on the shipped
Human-Art sample (tiny random models: those numbers prove the machinery only, they are no results)."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from spbench.canvas import CanvasTransform
from spbench.cli import app
from spbench.data.records import Instance, Sample
from spbench.errors import SpbenchError
from spbench.metrics import humansd_protocol as hp
from spbench.metrics.humansd_cap import cap_similarity
from spbench.metrics.humansd_clip import HumanSDClipEvaluator, clip_score
from spbench.metrics.humansd_inception import real_pixels
from spbench.metrics.humansd_kid import KidEvaluator, kid
from spbench.metrics.humansd_pose import HumanSDPoseEvaluator, ground_truth, people_count_error
from spbench.schemas import get_schema

SIGMAS = np.array(get_schema("coco17").sigmas)
IDENTITY = CanvasTransform(100, 100, 1.0, 1.0)


def person(points: dict[int, tuple[float, float]]) -> Instance:
    """A person with the given keypoints (index -> (x, y)) labelled, the others unlabelled."""
    kpts = tuple((*points[i], 2) if i in points else (0.0, 0.0, 0) for i in range(17))
    return Instance(category="person", bbox=(0, 0, 1, 1), area=1.0, keypoints=kpts)


def sample(*people: Instance, sample_id: str = "s0") -> Sample:
    return Sample(sample_id=sample_id, image_id=0, file="x.jpg", width=100, height=100, schema="coco17",
                  instances=tuple(people), prompt_template="a person")


def pose(points: dict[int, tuple[float, float]]) -> np.ndarray:
    out = np.zeros((17, 3))
    for i, (x, y) in points.items():
        out[i] = (x, y, 0.9)
    return out


# Three keypoints (eyes: sigma .025, left ear: .035) whose coordinates divided by their sigmas are
# ground truth x (10, 11, 12), y (10, 12, 11); detection x (10, 11, 12), y (10, 10.4, 11).
EYES_EAR = (1, 2, 3)


def scaled(xs, ys) -> dict[int, tuple[float, float]]:
    return {i: (x * SIGMAS[i], y * SIGMAS[i]) for i, x, y in zip(EYES_EAR, xs, ys)}


GT3 = scaled((10, 11, 12), (10, 12, 11))
DT3 = scaled((10, 11, 12), (10, 10.4, 11))
# Min-max: x_g = x_d = (0, .5, 1), y_g = (0, 1, .5), y_d = (0, .4, 1); each then divided by its norm
# (|x| = |y_g| = sqrt(1.25), |y_d| = sqrt(1.16)), so x_g . x_d = 1 and y_g . x_d = 0.8.
# Official: the detection's y part is its normalised x part / |y_d|:
#   cos = (1 + 0.8 / sqrt(1.16)) / (sqrt(2) * sqrt(1 + 1 / 1.16)) = 0.9031.
# Fixed: y_g . y_d = (1 * .4 + .5 * 1) / (sqrt(1.25) sqrt(1.16)): cos = (1 + 0.9 / sqrt(1.45)) / 2 = 0.8737.
OFFICIAL_COS = (1 + 0.8 / math.sqrt(1.16)) / (math.sqrt(2) * math.sqrt(1 + 1 / 1.16))
FIXED_COS = (1 + 0.9 / math.sqrt(1.25 * 1.16)) / 2


def test_cap_similarity_hand_computed():
    g, d = pose(GT3), pose(DT3)
    g[:, 2] = (g[:, 0] > 0) * 2
    assert OFFICIAL_COS == pytest.approx(0.9031, abs=1e-4) and FIXED_COS == pytest.approx(0.8737, abs=1e-4)
    assert cap_similarity(g, d, SIGMAS) == pytest.approx(OFFICIAL_COS, abs=1e-12)
    assert cap_similarity(g, d, SIGMAS, fixed=True) == pytest.approx(FIXED_COS, abs=1e-12)
    # A pose is not its own perfect match in the official code (its y part is replaced) but is in the fixed one.
    assert cap_similarity(g, g, SIGMAS) < 0.99
    assert cap_similarity(g, g, SIGMAS, fixed=True) == pytest.approx(1.0, abs=1e-12)
    one = np.zeros((17, 3))
    one[0] = (5, 5, 2)
    assert math.isnan(cap_similarity(one, pose({0: (50, 90)}), SIGMAS))  # one keypoint: 0 / 0


def score(samples_dets, code="official", pose_batch=0) -> dict:
    ev = HumanSDPoseEvaluator(code=code, pose_batch=pose_batch)
    for order, (s, dets) in enumerate(samples_dets):
        ev.update(s, IDENTITY, 0, order, [{"keypoints": d, "score": sc} for d, sc in dets])
    return ev.compute()


@pytest.mark.parametrize("code, expected", [("official", 90.0), ("fixed", 80.0)])
def test_cap_is_coco_ap_over_the_similarity(code, expected):
    # One pair with similarity 0.9031 (official) passes the thresholds .50 ... .90: 9 of 10; with
    # 0.8737 (fixed) .50 ... .85: 8 of 10.
    r = score([(sample(person(GT3)), [(pose(DT3), 0.8)])], code)
    assert r["CAP"] == pytest.approx(expected, abs=1e-6)
    assert r["CAR"] == pytest.approx(expected, abs=1e-6)


def test_cap_lets_an_undefined_similarity_match_as_the_published_code_does():
    # A condition person with one keypoint: similarity 0/0 = NaN, which COCOeval's `sim < t` never
    # rejects, so even a detection across the image matches at every threshold.
    r = score([(sample(person({0: (5.0, 5.0)})), [(pose({0: (90.0, 90.0)}), 0.8)])])
    assert r["CAP"] == pytest.approx(100.0) and r["AP"] == pytest.approx(0.0)


def test_ground_truth_conventions():
    s = sample(person({0: (10.0, 20.0), 5: (30.0, 40.0)}), person({}))
    official, = ground_truth(s, IDENTITY, 10, fixed=False)  # the person without a keypoint is left out
    kpts = np.array(official["keypoints"]).reshape(17, 3)
    assert kpts[1].tolist() == [-1.0, -1.0, 0.0] and kpts[5].tolist() == [30.0, 40.0, 2.0]
    assert official["bbox"] == [-1.0, -1.0, 31.0, 41.0] and official["area"] == 31.0 * 41.0
    assert official["num_keypoints"] == 2
    fixed, = ground_truth(s, IDENTITY, 10, fixed=True)
    assert np.array(fixed["keypoints"]).reshape(17, 3)[1].tolist() == [0.0, 0.0, 0.0]
    assert fixed["bbox"] == [10.0, 20.0, 20.0, 20.0] and fixed["area"] == 400.0
    # Only the first max_condition_people enter.
    assert len(ground_truth(sample(*[person({0: (5.0 + i, 5.0)}) for i in range(4)]), IDENTITY, 3, False)) == 3


def test_people_count_error_hand_computed():
    # Condition people (2, 0, 1), detected (1, 3, 1). Official: n = 2 images have a condition
    # person, so images 0 and 1 count: (|2-1| + |0-3|) / 2 = 2. Fixed: (1 + 3 + 0) / 3.
    assert people_count_error([2, 0, 1], [1, 3, 1], fixed=False) == 2.0
    assert people_count_error([2, 0, 1], [1, 3, 1], fixed=True) == pytest.approx(4 / 3)
    assert people_count_error([0, 0], [1, 2], fixed=False) is None
    # Through the evaluator, in split order, one batch.
    imgs = [(sample(person({0: (5, 5)}), person({0: (50, 50)}), sample_id="a"), [(pose({0: (5, 5)}), 0.9)]),
            (sample(sample_id="b"), [(pose({0: (5, 5)}), 0.9)] * 3),
            (sample(person({0: (5, 5)}), sample_id="c"), [(pose({0: (5, 5)}), 0.9)])]
    assert score(imgs)["PCE"] == 2.0
    assert score(imgs, "fixed")["PCE"] == pytest.approx(4 / 3)


def test_pose_ap_hand_computed_oks():
    # One labelled keypoint (nose, sigma .026) at (9, 9), detection 0.3 px away. Official area:
    # the box spans the unlabelled (-1, -1) keypoints, (9 + 1) * (9 + 1) = 100, so
    # OKS = exp(-0.09 / (2 * 100 * 0.052^2)) = 0.8467: thresholds .50 ... .80 pass, AP = AR = 70.
    # Fixed: the box of the one labelled keypoint has area 0, OKS = 0: AP 0.
    oks = math.exp(-0.09 / (2 * 100 * (2 * 0.026) ** 2))
    assert 0.80 < oks < 0.85
    pair = [(sample(person({0: (9.0, 9.0)})), [(pose({0: (9.3, 9.0)}), 0.9)])]
    official = score(pair)
    assert official["AP"] == pytest.approx(70.0) and official["AR"] == pytest.approx(70.0)
    assert score(pair, "fixed")["AP"] == pytest.approx(0.0)


def test_pose_ap_ar_against_pycocotools():
    """A hand-made case, the COCO ground truth written out here in HumanSD's conventions and scored
    by pycocotools directly, against the evaluator."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    a = {0: (20.0, 10.0), 5: (14.0, 25.0), 6: (26.0, 25.0), 11: (16.0, 50.0), 12: (24.0, 50.0)}
    b = {0: (70.0, 12.0), 5: (62.0, 30.0), 6: (78.0, 30.0), 11: (64.0, 60.0), 12: (76.0, 60.0), 15: (66.0, 90.0)}
    c = {0: (40.0, 40.0), 5: (35.0, 50.0), 6: (45.0, 50.0)}
    shift = lambda p, dx, dy: {i: (x + dx, y + dy) for i, (x, y) in p.items()}  # noqa: E731
    images = [
        (sample(person(a), person(b), sample_id="img1"),
         [(pose(shift(a, 1.0, 0.5)), 0.9), (pose(shift(b, 4.0, -3.0)), 0.6), (pose(shift(c, 0, 0)), 0.95)]),
        (sample(person(c), sample_id="img2"), [(pose(shift(c, 2.0, 2.0)), 0.7)]),
    ]
    ours = score(images)

    def gt_ann(points, ann_id, image_id):
        kp = [[-1.0, -1.0, 0.0]] * 17
        kp = [[*points[i], 2.0] if i in points else kp[i] for i in range(17)]
        xs, ys = [k[0] for k in kp], [k[1] for k in kp]
        return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": len(points),
                "keypoints": [v for k in kp for v in k], "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                "area": (max(xs) - min(xs)) * (max(ys) - min(ys))}

    dataset = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1, "name": "person"}],
               "annotations": [gt_ann(a, 1, 1), gt_ann(b, 2, 1), gt_ann(c, 3, 2)]}
    results = [{"image_id": img, "category_id": 1, "score": sc, "keypoints": pose(p).reshape(-1).tolist()}
               for img, p, sc in ((1, shift(a, 1.0, 0.5), 0.9), (1, shift(b, 4.0, -3.0), 0.6),
                                  (1, shift(c, 0, 0), 0.95), (2, shift(c, 2.0, 2.0), 0.7))]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.params.kpt_oks_sigmas = SIGMAS
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    for key, i in (("AP", 0), ("AP50", 1), ("AP75", 2), ("AR", 5), ("AR50", 6)):
        assert ours[key] == pytest.approx(100 * ev.stats[i], abs=1e-7), key
    assert 0 < ours["AP"] < 100  # not a case that a broken matching would also pass


def test_the_condition_pose_scores_ap_100_and_pce_0_but_cap_100_only_with_the_fixed_code():
    # Detected = condition. Official similarity of GT3 to itself: the y part becomes x / sqrt(1.25),
    # cos = (1 + 0.8 / sqrt(1.25)) / (sqrt(2) * sqrt(1.8)) = 0.9042: CAP 90. Fixed: cos 1, CAP 100.
    dets = [(np.concatenate([IDENTITY.points(person(GT3).xy), np.ones((17, 1))], axis=1), 1.0)]
    official, fixed = score([(sample(person(GT3)), dets)]), score([(sample(person(GT3)), dets)], "fixed")
    assert official["AP"] == fixed["AP"] == pytest.approx(100.0)
    assert official["PCE"] == fixed["PCE"] == 0.0
    assert fixed["CAP"] == pytest.approx(100.0) and official["CAP"] == pytest.approx(90.0)


def test_batches_average_per_batch_values():
    # Two batches of one image, a perfect one (AP 100) and one without a detection (AP 0): the mean is
    # 50. One COCOeval over both: recall 1/2 at precision 1, so 51 of the 101 recall points: 50.495.
    p = {0: (20.0, 10.0), 5: (14.0, 25.0), 6: (26.0, 25.0)}
    imgs = [(sample(person(p), sample_id="a"), [(pose(p), 0.9)]), (sample(person(p), sample_id="b"), [])]
    batched = score(imgs, pose_batch=1)
    assert batched["num_batches"] == 2 and batched["AP"] == pytest.approx(50.0)
    assert batched["pooled"]["AP"] == pytest.approx(100 * 51 / 101)
    assert score(imgs, pose_batch=0)["AP"] == pytest.approx(100 * 51 / 101)


def test_kid_hand_computed():
    # 1-d features, real {0, 1}, generated {1, 2}, kernel (x y / 1 + 1)^3, subsets of the whole sets:
    # K_rr off-diagonal 1 -> 1; K_gg 27 -> 27; K_rg (1, 1, 8, 27) -> 2 * 37 / 4 = 18.5; MMD² = 9.5.
    mean, std, n = kid([[0.0], [1.0]], [[1.0], [2.0]], subsets=3, subset_size=2, seed=0)
    assert (mean, std, n) == (pytest.approx(9.5), pytest.approx(0.0), 2)


def test_kid_equals_torchmetrics_on_the_same_features():
    from torchmetrics.image.kid import KernelInceptionDistance

    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(30, 8, generator=g), torch.randn(25, 8, generator=g) + 0.3
    metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=6, subset_size=10)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    torch.manual_seed(7)
    tm_mean, tm_std = (float(v) for v in metric.compute())
    mean, std, n = kid(real.numpy(), fake.numpy(), subsets=6, subset_size=10, seed=7)
    assert n == 10
    assert mean == pytest.approx(tm_mean, rel=1e-5, abs=1e-7) and std == pytest.approx(tm_std, rel=1e-4, abs=1e-7)
    # The evaluator: features in, the same KID out; merged halves give the same.
    ev = KidEvaluator("identity", 8, subsets=6, subset_size=10, seed=7)
    ev.update([(f"s{i:02d}", 0) for i in range(25)], fake.numpy())  # ids in feature order
    ev.set_reference(real.numpy(), {})
    assert ev.compute()["kid"] == pytest.approx(mean, rel=1e-12)
    a, b = KidEvaluator("identity", 8, subsets=6, subset_size=10, seed=7), KidEvaluator("identity", 8, subsets=6, subset_size=10, seed=7)
    a.update([(f"s{i:02d}", 0) for i in range(12)], fake.numpy()[:12])
    a.set_reference(real.numpy(), {})
    b.update([(f"s{i:02d}", 0) for i in range(12, 25)], fake.numpy()[12:])
    assert a.merge([b.state()]).compute()["kid"] == pytest.approx(mean, rel=1e-12)


def test_real_images_wrap_as_torchmetrics_normalize_casts_imagenet_normalised_pixels():
    # Black: (0 - .485) / .229 * 255 = -540.07 -> -540 -> 228 (mod 256); G: -519.1 -> 249; B: -460.1 -> 52.
    # White: 573.5 -> 61; 619.3 -> 107; 673.2 -> 161.
    black, white = Image.new("RGB", (400, 300)), Image.new("RGB", (300, 500), (255, 255, 255))
    assert real_pixels(black).shape == (299, 299, 3)
    assert np.unique(real_pixels(black).reshape(-1, 3), axis=0).tolist() == [[228, 249, 52]]
    assert np.unique(real_pixels(white).reshape(-1, 3), axis=0).tolist() == [[61, 107, 161]]
    assert np.unique(real_pixels(white, "fixed").reshape(-1, 3), axis=0).tolist() == [[255, 255, 255]]


def test_clip_score_clamps_the_mean_and_equals_torchmetrics():
    from torchmetrics.multimodal import CLIPScore

    from spbench.metrics.clip_model import ClipScorer, build_tiny_clip

    assert clip_score([0.3, -0.5]) == 0.0 and clip_score([0.3, 0.1]) == pytest.approx(20.0)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(3)]
    texts = ["a dancer on a stage", "two people", "a sculpture of a man"]
    model, processor = build_tiny_clip()
    cos, _ = ClipScorer(model, processor, "tiny").cosines(images, texts)
    ev = HumanSDClipEvaluator()
    for i, c in enumerate(cos):
        ev.update(f"s{i}", 0, c)

    class Features(torch.nn.Module):  # torchmetrics wants tensors; transformers 5 returns outputs
        def __init__(self):
            super().__init__()
            self.config = model.config

        def get_image_features(self, pixel_values):
            return model.get_image_features(pixel_values=pixel_values).pooler_output

        def get_text_features(self, input_ids, attention_mask):
            return model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output

    metric = CLIPScore(model_name_or_path=lambda: (Features(), processor))
    expected = float(metric(torch.stack([torch.from_numpy(np.asarray(im)).permute(2, 0, 1) for im in images]), texts))
    assert ev.compute()["score"] == pytest.approx(expected, abs=1e-4)


def test_protocol_maps_metric_names_and_checks_its_settings():
    assert hp.protocol_metrics(["pose", "fid", "clip", "det"], "humansd") == [hp.POSE, hp.FID, hp.CLIP, "det"]
    assert hp.protocol_metrics(["humansd"], "official") == list(hp.METRICS)
    assert hp.protocol_metrics(["pose", "kid"], "canvas") == ["pose", hp.KID]
    with pytest.raises(SpbenchError, match="evaluation.humansd.code must be"):
        hp.settings({"evaluation": {"humansd": {"code": "offical"}}})
    assert hp.clip_model({"profile": {"tiny": False}, "models": {}}) == "openai/clip-vit-base-patch16"
    with pytest.raises(SpbenchError, match="COCO's 17 body keypoints"):
        hp.check_schema({"dataset": {"schema": "ap10k"}})


def test_run_with_the_humansd_protocol_on_the_human_art_sample(tmp_path):
    """End to end with tiny random models (the numbers prove the machinery, nothing else)."""
    out = tmp_path / "runs"
    args = ["run", "--method", "controlnet", "--dataset", "sample-humanart", "--profile", "tiny", "--steps", "1",
            "--images-per-prompt", "1", "--limit", "4", "--out", str(out), "--protocol", "humansd",
            "--metrics", "pose,fid,kid,clip", "--set", "evaluation.bootstrap_resamples=0",
            "--set", "evaluation.humansd.max_people=5"]  # the tiny detector's random boxes: 5 per image
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = next(out.iterdir())
    record = json.loads((run / "result.json").read_text())
    m = record["metrics"]
    assert record["tiny"] is True
    for metric, keys in ((hp.POSE, ("AP", "AR", "CAP", "PCE")), (hp.FID, ("fid",)), (hp.KID, ("kid", "kid_x10")),
                         (hp.CLIP, ("score",))):
        assert all(isinstance(m[metric][k], float) for k in keys), (metric, m[metric])
        assert record["evaluation"][metric]["protocol"] == "humansd"
    assert "HigherHRNet" in record["evaluation"][hp.POSE]["substitution"]
    assert m[hp.KID]["subset_size"] == 4  # 4 images: the subset is cut to them, and the record says so
    # The protocol's table: HumanSD's published numbers beside ours (marked tiny).
    from spbench.results.load import load_records
    from spbench.tables.render import build_table

    table = build_table("humansd", load_records([str(out)]))
    assert table.loc["ControlNet", ("CAP↑", "ours")] == pytest.approx(m[hp.POSE]["CAP"])
    assert table.loc["ControlNet", ("PCE↓", "marker")] == "†tiny"
    # The oracle: the condition people themselves; a diagnostic, stored beside the run's score.
    result = CliRunner().invoke(app, ["evaluate", str(run), "--protocol", "humansd", "--metrics", "pose",
                                      "--pose-model", "oracle"])
    assert result.exit_code == 0, result.output
    oracle = json.loads((run / "result.json").read_text())["metrics"]["humansd-pose@oracle"]
    assert oracle["diagnostic"] and oracle["AP"] == 100.0 and oracle["PCE"] == 0.0
    assert hp.POSE in json.loads((run / "result.json").read_text())["metrics"]  # the run's score stays
