"""--protocol stable-pose: HumanSD's metrics as Stable-Pose's (and GRPose's) evaluation code runs
them — batches of 4 with the last partial one dropped, FID and KID per scene averaged over scenes,
generated images resized and normalised as the real ones, KID x100, texts cut to 77 characters —
each checked against an independent computation (scipy, torchmetrics, torchvision + torch's own
cast, a hand-computed case), and the protocol end to end (tiny random models: machinery only)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from spbench.canvas import CanvasTransform
from spbench.cli import app
from spbench.data.records import Instance, Sample
from spbench.errors import SpbenchError
from spbench.harness import parse_metrics
from spbench.metrics import humansd_protocol as hp
from spbench.metrics.humansd_clip_scoring import family_text
from spbench.metrics.humansd_inception import resized_generated_pixels
from spbench.metrics.humansd_pose import HumanSDPoseEvaluator
from spbench.metrics.humansd_scenes import SceneFidEvaluator, SceneKidEvaluator
from helpers import spbench_in_process

IDENTITY = CanvasTransform(100, 100, 1.0, 1.0)
POINTS = {0: (20.0, 10.0), 5: (14.0, 25.0), 6: (26.0, 25.0)}


def person() -> Instance:
    kpts = tuple((*POINTS[i], 2) if i in POINTS else (0.0, 0.0, 0) for i in range(17))
    return Instance(category="person", bbox=(0, 0, 1, 1), area=1.0, keypoints=kpts)


def found() -> dict:
    out = np.zeros((17, 3))
    for i, (x, y) in POINTS.items():
        out[i] = (x, y, 0.9)
    return {"keypoints": out, "score": 0.9}


def test_protocol_names_settings_and_default_metrics():
    sp = hp.STABLE_POSE
    assert hp.protocol_metrics(["pose", "fid", "kid", "clip", "det"], "stable-pose") == [*sp.metrics, "det"]
    assert hp.protocol_metrics(["stablepose"], "official") == list(sp.metrics)
    assert hp.protocol_metrics(["kid"], "humansd") == [hp.KID]
    assert parse_metrics(None, "stable-pose") == ["stablepose"]
    assert hp.family_of("stablepose-pose@oracle") is sp and hp.family_of("pose") is None
    s = hp.settings({}, sp)
    assert (s["pose_batch"], s["kid_subset_size"]) == (4, 200)  # eval_pose.py --batch_size 4; metrics.yaml 200
    assert hp.settings({}, hp.HUMANSD)["pose_batch"] == 10
    with pytest.raises(SpbenchError, match=r"evaluation\.stable_pose\.kid_subset_size must be an integer >= 2"):
        hp.settings({"evaluation": {"stable_pose": {"kid_subset_size": 1}}}, sp)
    with pytest.raises(SpbenchError, match=r"unknown setting\(s\) evaluation\.stable_pose\.batch"):
        hp.settings({"evaluation": {"stable_pose": {"batch": 4}}}, sp)


def test_the_partial_last_batch_is_not_scored():
    # Nine images, batches of 4: [0-3] [4-7] [8]. Images 0-7 are found exactly (AP 100, PCE 0); image 8
    # has two detections for one person (PCE 1). Stable-Pose's DataLoader(drop_last=True) never scores
    # image 8: PCE 0 over 2 batches. Without drop_last: three batches, PCE (0 + 0 + 1) / 3.
    def run(drop_last):
        ev = HumanSDPoseEvaluator(pose_batch=4, drop_last=drop_last, name="stablepose-pose")
        for i in range(9):
            s = Sample(sample_id=f"s{i}", image_id=i, file="x.jpg", width=100, height=100, schema="coco17",
                       instances=(person(),), prompt_template="a person")
            ev.update(s, IDENTITY, 0, i, [found()] * (2 if i == 8 else 1))
        return ev.compute()

    dropped, kept = run(True), run(False)
    assert dropped["num_batches"] == 2 and dropped["PCE"] == 0.0 and dropped["num_dropped_images"] == 1
    assert kept["num_batches"] == 3 and kept["PCE"] == pytest.approx(1 / 3)
    assert dropped["AP"] == pytest.approx(100.0)
    assert dropped["pooled"]["PCE"] == pytest.approx(1 / 9)  # pooled: every image, as before


def _fid(a: np.ndarray, b: np.ndarray) -> float:
    """FID from scratch (scipy's matrix square root, covariances with n - 1), as torchmetrics defines it."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


def test_scene_fid_is_the_mean_over_scenes_of_each_scenes_fid():
    rng = np.random.default_rng(0)
    real = {"cartoon": rng.normal(size=(6, 3)), "dance": rng.normal(size=(5, 3)) + 1, "mural": rng.normal(size=(4, 3))}
    fake = {"cartoon": rng.normal(size=(7, 3)) + 0.2, "dance": rng.normal(size=(4, 3)), "mural": rng.normal(size=(1, 3))}
    scenes, keys, rows = {}, [], []
    for scene, f in fake.items():
        for j, row in enumerate(f):
            sid = f"{scene}-{j}"
            scenes[sid] = scene
            keys.append((sid, 0))
            rows.append(row)
    ref_rows = np.concatenate(list(real.values()))
    ref_scenes = [s for s, r in real.items() for _ in range(len(r))]
    ev = SceneFidEvaluator("identity", 3, scenes)
    ev.update(keys, np.array(rows, dtype=np.float32))
    ev.set_scene_reference(ref_rows, ref_scenes, {})
    r = ev.compute()
    expected = {s: _fid(fake[s].astype(np.float32).astype(np.float64), real[s]) for s in ("cartoon", "dance")}
    for s, v in expected.items():
        assert r["per_scene"][s]["fid"] == pytest.approx(v, rel=1e-6)
    assert r["per_scene"]["mural"]["fid"] is None and "fewer than two" in r["per_scene"]["mural"]["left_out"]
    assert r["fid"] == pytest.approx(np.mean(list(expected.values())), rel=1e-6)  # mural left out of the mean
    assert (r["num_scenes"], r["num_scenes_scored"]) == (3, 2)
    assert isinstance(ev.bootstrap_data(), str)  # a scene mean is not resampled over prompts


def test_scene_kid_equals_torchmetrics_per_scene_and_leaves_out_scenes_at_the_subset_size():
    from torchmetrics.image.kid import KernelInceptionDistance

    g = torch.Generator().manual_seed(3)
    real = {"a": torch.randn(12, 4, generator=g), "b": torch.randn(10, 4, generator=g) + 0.5,
            "c": torch.randn(9, 4, generator=g)}
    fake = {"a": torch.randn(11, 4, generator=g) + 0.3, "b": torch.randn(8, 4, generator=g),
            "c": torch.randn(6, 4, generator=g)}  # c: 6 generated = the subset size -> no KID (calculate_kid: None)
    expected = {}
    for s in ("a", "b"):
        metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=5, subset_size=6)
        metric.update(real[s], real=True)
        metric.update(fake[s], real=False)
        torch.manual_seed(11)
        expected[s] = float(metric.compute()[0])
    scenes, keys, rows = {}, [], []
    for s, f in fake.items():
        for j, row in enumerate(f):
            scenes[f"{s}{j:02d}"] = s
            keys.append((f"{s}{j:02d}", 0))
            rows.append(row.numpy())
    ev = SceneKidEvaluator("identity", 4, scenes, subsets=5, subset_size=6, seed=11, scale=100)
    ev.update(keys, np.array(rows))
    ev.set_scene_reference(torch.cat(list(real.values())).numpy(), [s for s, r in real.items() for _ in range(len(r))], {})
    r = ev.compute()
    for s in ("a", "b"):
        assert r["per_scene"][s]["kid"] == pytest.approx(expected[s], rel=1e-5, abs=1e-7)
    assert r["per_scene"]["c"]["kid"] is None and "not more than the subset size 6" in r["per_scene"]["c"]["left_out"]
    mean = (expected["a"] + expected["b"]) / 2
    assert r["kid"] == pytest.approx(mean, rel=1e-5, abs=1e-7)
    assert r["kid_x100"] == pytest.approx(100 * r["kid"], rel=1e-12)
    assert r["num_scenes"] == 3 and r["num_scenes_scored"] == 2


def test_generated_images_are_resized_and_normalised_as_stable_pose_prepares_them():
    # Stable-Pose's eval_quality.py: Resize(299), ToTensor, Normalize(ImageNet), then torchmetrics'
    # normalize=True cast (x * 255).byte(), which torch itself computes here.
    from torchvision import transforms as T

    rng = np.random.default_rng(5)
    image = Image.fromarray(rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8))
    x = T.Compose([T.Resize(299), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])(image)
    expected = (x * 255).byte().permute(1, 2, 0).numpy()
    got = resized_generated_pixels(image)
    assert got.shape == (299, 448, 3)  # the shorter side to 299, no crop
    assert np.array_equal(got, expected)
    fixed = resized_generated_pixels(image, "fixed")
    assert np.array_equal(fixed, np.asarray(T.Resize(299)(image)))


def test_clip_texts_are_cut_to_77_characters():
    text = "cartoon, " + "a very long caption " * 8
    assert family_text(text, hp.STABLE_POSE) == text[:77] and len(family_text(text, hp.STABLE_POSE)) == 77
    assert family_text(text, hp.HUMANSD) == text


def _two_scene_humanart(tmp_path: Path) -> Path:
    """The shipped Human-Art sample with its images put in two scenes (alternating), so that each
    scene has several real images."""
    root = tmp_path / "ha"
    shutil.copytree(Path(__file__).parents[1] / "spbench" / "data" / "sample" / "humanart" / "HumanArt",
                    root / "HumanArt")
    ann = root / "HumanArt" / "annotations" / "validation_humanart.json"
    doc = json.loads(ann.read_text())
    for i, im in enumerate(sorted(doc["images"], key=lambda im: im["id"])):
        im["category"] = "cartoon" if i % 2 == 0 else "dance"
    ann.write_text(json.dumps(doc))
    return root


def test_run_with_the_stable_pose_protocol_end_to_end(tmp_path):
    """Tiny random models: the numbers prove the machinery, nothing else."""
    out = tmp_path / "runs"
    args = ["run", "--method", "controlnet", "--dataset", "humanart", "--data-root", str(_two_scene_humanart(tmp_path)),
            "--profile", "tiny", "--steps", "1", "--images-per-prompt", "2", "--out", str(out),
            "--protocol", "stable-pose", "--set", "evaluation.bootstrap_resamples=0",
            "--set", "evaluation.stable_pose.max_people=5", "--set", "evaluation.stable_pose.kid_subset_size=3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = next(out.iterdir())
    record = json.loads((run / "result.json").read_text())
    m, sp = record["metrics"], hp.STABLE_POSE
    assert set(m) == set(sp.metrics)  # --metrics unset: all four of the protocol
    for metric in sp.metrics:
        assert record["evaluation"][metric]["protocol"] == "stable-pose"
        assert record["evaluation"][metric]["settings"]["kid_subset_size"] == 3
    assert m[sp.pose]["drop_last"] is True and m[sp.pose]["pose_batch"] == 4
    n = m[sp.pose]["num_images"] // 2  # images per k
    assert m[sp.pose]["num_dropped_images"] == 2 * (n % 4)
    for metric, key in ((sp.fid, "fid"), (sp.kid, "kid")):
        per_scene = m[metric]["per_scene"]
        assert set(per_scene) == {"cartoon", "dance"}
        values = [v[key] for v in per_scene.values() if v[key] is not None]
        assert m[metric][key] == pytest.approx(sum(values) / len(values), rel=1e-12)
    assert m[sp.kid]["kid_x100"] == pytest.approx(100 * m[sp.kid]["kid"])
    assert "without the crop" in record["evaluation"][sp.fid]["generated_images"]
    assert "77 characters" in record["evaluation"][sp.clip]["truncation"]
    # The protocol's table: GRPose's published numbers beside ours (marked tiny); the HumanSD table has no cell of it.
    from spbench.results.load import load_records
    from spbench.tables.render import build_table

    records = load_records([str(out)])
    table = build_table("stable-pose", records)
    assert table.loc["ControlNet", ("KID×100↓", "ours")] == pytest.approx(m[sp.kid]["kid_x100"])
    assert table.loc["ControlNet", ("AP↑", "marker")] == "†tiny"
    assert "GRPose†" in table.index
    humansd = build_table("humansd", records)
    assert np.isnan(humansd.loc["ControlNet", ("AP↑", "ours")])
    # An existing run scored again with another scoring setting (spbench evaluate --set evaluation.*):
    # one COCOeval over all images, so the headline is the pooled value; the setting is recorded.
    result = CliRunner().invoke(app, ["evaluate", str(run), "--protocol", "stable-pose", "--metrics", "pose",
                                      "--set", "evaluation.stable_pose.pose_batch=0"])
    assert result.exit_code == 0, result.output
    again = json.loads((run / "result.json").read_text())
    assert again["metrics"][sp.pose]["AP"] == again["metrics"][sp.pose]["pooled"]["AP"]
    assert again["evaluation"][sp.pose]["settings"]["pose_batch"] == 0
    assert again["metrics"][sp.fid] == m[sp.fid]  # the other metrics stay as scored
    before = (run / "result.json").read_bytes()
    for bad, says in ((["--set", "generation.steps=3"], "changes scoring settings (evaluation.*) only"),
                      (["--set", "evaluation.stable_pose.pose_bach=0"], "did you mean 'evaluation.stable_pose.pose_batch'")):
        result = spbench_in_process("evaluate", run, "--metrics", "pose", *bad)
        assert result.returncode == 2 and says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result
    assert (run / "result.json").read_bytes() == before  # nothing written


def test_clipsim_is_resampled_over_prompts_with_its_clamp():
    # Three prompts, one image each: cos 0.3, -0.5, 0.2. A draw of prompts (b, b, b) has mean -50,
    # clamped to 0 as torchmetrics' CLIPScore clamps its mean; (a, c, c): (30 + 20 + 20) / 3.
    from spbench.metrics.bootstrap import resampler_for
    from spbench.metrics.humansd_clip import HumanSDClipEvaluator

    ev = HumanSDClipEvaluator(name=hp.STABLE_POSE.clip)
    for sample_id, cos in (("a", 0.3), ("b", -0.5), ("c", 0.2)):
        ev.update(sample_id, 0, cos)
    resampler = resampler_for(ev, "score")
    assert resampler.value([1, 1, 1]) == 0.0
    assert resampler.value([0, 2, 2]) == pytest.approx(70 / 3)
    assert resampler.value([0, 1, 2]) == pytest.approx(ev.compute()["score"])  # the whole set: the headline (0)
