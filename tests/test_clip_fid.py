"""CLIP-Score and FID: equal to torchmetrics computed directly on the same images and texts with the
same tiny models, mergeable across processes, FID's reference cache keyed by every setting, and
one-line errors for missing models."""

from __future__ import annotations

import os
import pickle
import statistics

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

from spbench.canvas import CanvasTransform
from spbench.config import load_profile, resolve
from spbench.data.registry import load_split
from spbench.errors import SpbenchError
from spbench.metrics.clip_model import build_tiny_clip
from spbench.metrics.clip_score import ClipScoreEvaluator
from spbench.metrics.clip_scoring import score_clip
from spbench.metrics.clip_text import clip_text
from spbench.metrics.evaluate import ScoringContext
from spbench.metrics.fid import FidEvaluator
from spbench.metrics.fid_inception import build_tiny_inception, inception_weights, load_extractor
from spbench.metrics.fid_scoring import score_fid
from spbench.run.folder import RunFolder
from spbench.schemas import AP10K

CANVAS = 64
K = 3
# SP-Ctrl's official prompt format: the template's <KPT> becomes " <tok, tok>".
TOKENS = " <<left-eye>, <nose>>"
DESCRIBED = " <left eye, nose>"


def reference_canvas(split, sample) -> np.ndarray:
    """The real image resized to the square 'stretch' canvas, written out by hand (PIL bicubic)."""
    image = Image.open(split.image_path(sample)).convert("RGB")
    return np.asarray(image.resize((CANVAS, CANVAS), Image.Resampling.BICUBIC))


def make_run(tmp_path, dataset_split="ap10k", noise=(0.0, 20.0, 40.0), sets=(), data_root=None):
    """A run folder of the shipped sample: image k is the real image on the canvas plus Gaussian
    noise of std noise[k]; prompts carry keypoint tokens. Returns (ctx, rows, split)."""
    split = load_split("sample", dataset_split)
    schema = split.samples[0].schema
    cfg = resolve(load_profile("tiny"), schema, {}, [f"paths.cache={tmp_path / 'cache'}", *sets])
    run = RunFolder(tmp_path / f"run-{dataset_split}")
    (run.path / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for s in split.samples:
        ref = reference_canvas(split, s).astype(np.float64)
        transform = CanvasTransform.fit(s.width, s.height, CANVAS, "stretch")
        for k, sigma in enumerate(noise):
            file = f"images/{s.sample_id}_k{k}.png"
            pixels = np.clip(ref + rng.normal(0, sigma, ref.shape), 0, 255).round().astype(np.uint8)
            Image.fromarray(pixels).save(run.path / file)
            rows.append({"sample_id": s.sample_id, "k": k, "prompt": s.prompt_template.replace("<KPT>", TOKENS),
                         "canvas": transform.to_dict(), "file": file})
    info = {"dataset": {"name": split.dataset, "split": split.name, "hash": split.content_hash,
                        "data_root": str(data_root or split.root), "schema": schema},
            "config": cfg}
    return ScoringContext(run, info, {s.sample_id: s for s in split.samples}), rows, split


def uint8_batch(images) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(im) for im in images])).permute(0, 3, 1, 2).contiguous()


# -- CLIP-Score --------------------------------------------------------------------------------------

class FeaturesOnly(torch.nn.Module):
    """What torchmetrics' CLIPScore expects of a model: get_*_features returning tensors."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def get_image_features(self, pixel_values):
        return self.model.get_image_features(pixel_values=pixel_values).pooler_output

    def get_text_features(self, input_ids, attention_mask):
        return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output


def torchmetrics_clip(pairs: list[tuple[Image.Image, str]]) -> list[float]:
    """torchmetrics' CLIPScore of each (image, text) pair on its own, the same tiny CLIP weights."""
    from torchmetrics.multimodal.clip_score import CLIPScore

    model, processor = build_tiny_clip()
    metric = CLIPScore(model_name_or_path=lambda: (FeaturesOnly(model), processor))
    out = []
    for image, text in pairs:
        metric.reset()
        metric.update(torch.from_numpy(np.array(image)).permute(2, 0, 1), text)
        out.append(float(metric.compute()))
    return out


def test_clip_text_replaces_keypoint_tokens_by_descriptions():
    prompt = "A photo of dog <<left-eye>, <right-front-paw>, <root-of-tail>> in the grass"
    assert clip_text(prompt, AP10K) == "A photo of dog <left eye, right front paw, root of tail> in the grass"
    assert clip_text(prompt, AP10K, "tokens") == prompt
    assert clip_text(prompt, AP10K, "caption", caption="A photo of dog in the grass") == "A photo of dog in the grass"
    with pytest.raises(SpbenchError, match="clip_text"):
        clip_text(prompt, AP10K, "words")


def test_clip_score_equals_torchmetrics_per_image_and_category_averaged(tmp_path):
    ctx, rows, split = make_run(tmp_path)
    ev = score_clip(ctx, rows)
    res = ev.compute()
    records = {(r["sample_id"], r["k"]): r for r in ev.records()}
    samples = {s.sample_id: s for s in split.samples}
    texts = [samples[r["sample_id"]].prompt_template.replace("<KPT>", DESCRIBED) for r in rows]
    images = [Image.open(ctx.run.path / r["file"]).convert("RGB") for r in rows]
    expected = {(r["sample_id"], r["k"]): (samples[r["sample_id"]].categories[0], v)
                for r, v in zip(rows, torchmetrics_clip(list(zip(images, texts))))}
    assert [records[(r["sample_id"], r["k"])]["text"] for r in rows] == texts
    for key, (_, score) in expected.items():
        assert records[key]["score"] == pytest.approx(score, abs=1e-4)
    assert any(v == 0.0 for _, v in expected.values()) and any(v > 0 for _, v in expected.values())

    def category_mean(keys):
        by_cat = {}
        for key in keys:
            cat, v = expected[key]
            by_cat.setdefault(cat, []).append(v)
        return statistics.fmean(statistics.fmean(v) for v in by_cat.values()), by_cat

    score, by_cat = category_mean(expected)
    assert res["score"] == pytest.approx(score, abs=1e-4)
    assert set(res["per_category"]) == set(by_cat) and res["num_categories"] == len(by_cat) == 9
    per_k = [category_mean([key for key in expected if key[1] == k])[0] for k in range(K)]
    for k in range(K):
        assert res["per_k"][str(k)]["score"] == pytest.approx(per_k[k], abs=1e-4)
    assert res["mean_over_k"] == pytest.approx(statistics.fmean(per_k), abs=1e-4)
    assert res["std_over_k"] == pytest.approx(statistics.stdev(per_k), abs=1e-4)
    assert res["num_images"] == len(rows) and res["group_by"] == "category"


def test_clip_groups_human_art_by_scene_and_none_is_the_plain_mean(tmp_path):
    ctx, rows, split = make_run(tmp_path, "humanart", noise=(0.0,))
    res = score_clip(ctx, rows).compute()
    assert res["group_by"] == "scene" and set(res["per_category"]) == {s.scene for s in split.samples}
    ctx.config["evaluation"]["clip_group_by"] = "none"
    flat = score_clip(ctx, rows).compute()
    assert flat["score"] == pytest.approx(flat["score_image_mean"], abs=1e-12)
    assert list(flat["per_category"]) == ["all"]


def test_clip_merged_states_equal_one_process():
    full, a, b = ClipScoreEvaluator(), ClipScoreEvaluator(), ClipScoreEvaluator()
    rng = np.random.default_rng(0)
    items = [(f"s{i}", k, "dog" if i % 3 else "cat", float(rng.uniform(-0.2, 0.5))) for i in range(6) for k in range(K)]
    for n, item in enumerate(items):
        full.update(*item)
        (a if n % 2 else b).update(*item)
    b.update(*items[1])  # a repeat, as accelerate's padded last batch would score
    merged = ClipScoreEvaluator().merge(pickle.loads(pickle.dumps([b.state(), a.state()])))
    assert merged.compute() == full.compute() and merged.records() == full.records()


def test_missing_clip_model_is_a_one_line_error(tmp_path):
    ctx, rows, _ = make_run(tmp_path, noise=(0.0,))
    ctx.config["models"]["clip"] = "spbench-tests/no-such-clip"
    with pytest.raises(SpbenchError) as e:
        score_clip(ctx, rows)
    assert "spbench-tests/no-such-clip" in str(e.value) and "CLIP" in str(e.value) and "\n" not in str(e.value)


# -- FID -------------------------------------------------------------------------------------------

def torchmetrics_fid(real: list, fake: list) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=build_tiny_inception())
    metric.update(uint8_batch(real), real=True)
    metric.update(uint8_batch(fake), real=False)
    return float(metric.compute())


def test_fid_equals_torchmetrics_overall_and_per_k(tmp_path):
    ctx, rows, split = make_run(tmp_path, noise=(10.0, 30.0, 60.0))
    res = score_fid(ctx, rows).compute()
    real = [reference_canvas(split, s) for s in split.samples]
    fake = {k: [Image.open(ctx.run.path / r["file"]) for r in rows if r["k"] == k] for k in range(K)}
    expected = torchmetrics_fid(real, [im for k in range(K) for im in fake[k]])
    assert res["fid"] > 0 and res["fid"] == pytest.approx(expected, rel=1e-4)
    per_k = [torchmetrics_fid(real, fake[k]) for k in range(K)]
    for k in range(K):
        assert res["per_k"][str(k)]["fid"] == pytest.approx(per_k[k], rel=1e-4)
    assert per_k[0] < per_k[1] < per_k[2]
    assert res["mean_over_k"] == pytest.approx(statistics.fmean(per_k), rel=1e-4)
    assert res["std_over_k"] == pytest.approx(statistics.stdev(per_k), rel=1e-4)
    assert (res["num_generated"], res["num_reference"]) == (len(rows), len(split))


def test_tiny_extractor_resizes_by_fid_resize_as_the_real_one(tmp_path):
    """tiny://inception honours evaluation.fid_resize (it used to resize with antialias whatever
    the setting): tf1 is torch-fidelity's TF1 bilinear, the resize torchmetrics' Inception uses
    without antialias; the record's description says which."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    from spbench.metrics.fid_inception import resize_batch

    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 48))).float()
    np.testing.assert_array_equal(resize_batch(x, 32, "tf1").numpy(),
                                  interpolate_bilinear_2d_like_tensorflow1x(x, size=(32, 32), align_corners=False).numpy())
    assert not torch.allclose(resize_batch(x, 32, "tf1"), resize_batch(x, 32, "antialias"))
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)) for i in range(3)]
    aa, tf1 = load_extractor("tiny://inception", "antialias"), load_extractor("tiny://inception", "tf1")
    assert aa.resize.startswith("torch bilinear with antialias") and tf1.resize.startswith("TensorFlow-1")
    assert not np.allclose(aa(images), tf1(images))
    ctx, rows, _ = make_run(tmp_path, noise=(0.0, 40.0), sets=["evaluation.fid_resize=tf1"])
    assert score_fid(ctx, rows).description["resize"].startswith("TensorFlow-1")


def test_fid_of_the_real_images_against_themselves_is_zero(tmp_path):
    ctx, rows, _ = make_run(tmp_path, noise=(0.0, 40.0))
    res = score_fid(ctx, rows).compute()
    assert abs(res["per_k"]["0"]["fid"]) < 1e-4 * res["per_k"]["1"]["fid"]


def test_fid_reference_cache_is_written_once_reused_and_keyed_by_settings(tmp_path):
    import shutil

    root = tmp_path / "images"
    shutil.copytree(load_split("sample").root, root)
    ctx, rows, _ = make_run(tmp_path, noise=(0.0, 30.0), data_root=root)
    first = score_fid(ctx, rows)
    files = list((tmp_path / "cache" / "fid").glob("*.npz"))
    assert len(files) == 1 and "(written)" in first.description["reference_cache"]
    name = files[0].name
    assert name.startswith(f"sample-ap10k-{ctx.run_info['dataset']['hash']}-64x64-stretch-tiny_inception-aa-")
    stamp = files[0].stat().st_mtime_ns

    shutil.rmtree(root)  # the real images are gone: only the cache can answer now
    again = score_fid(ctx, rows)
    assert "(reused)" in again.description["reference_cache"]
    assert again.compute()["fid"] == first.compute()["fid"]
    assert files[0].stat().st_mtime_ns == stamp

    # Another canvas mode needs other statistics: not the cached ones (which would answer silently).
    ctx.config["generation"]["canvas_mode"] = "letterbox"
    with pytest.raises(SpbenchError, match="real images"):
        score_fid(ctx, rows)
    shutil.copytree(load_split("sample").root, root)
    score_fid(ctx, rows)
    ctx.run_info["dataset"]["hash"] = "0" * 16  # another split
    score_fid(ctx, rows)
    names = sorted(p.name for p in (tmp_path / "cache" / "fid").glob("*.npz"))
    assert len(names) == 3 and name in names and any("letterbox" in n for n in names)
    assert not list((tmp_path / "cache" / "fid").glob(".*.tmp"))


def test_fid_cache_with_other_stored_settings_is_not_reused(tmp_path):
    ctx, rows, _ = make_run(tmp_path, noise=(0.0, 30.0))
    fid = score_fid(ctx, rows).compute()["fid"]
    path = next((tmp_path / "cache" / "fid").glob("*.npz"))
    with np.load(path) as f:
        data = dict(f)
    data["sum"] = data["sum"] + 1.0  # statistics that do not belong to these settings...
    data["settings"] = np.array(str(data["settings"]).replace('"version": 1', '"version": 0'))
    np.savez(path.with_suffix(""), **data)  # ...stored under the same name
    again = score_fid(ctx, rows)
    assert "(written)" in again.description["reference_cache"] and again.compute()["fid"] == fid


def test_fid_merged_states_equal_one_process(tmp_path):
    ctx, rows, _ = make_run(tmp_path, noise=(0.0, 25.0, 50.0))
    extractor = load_extractor("tiny://inception")
    main = score_fid(ctx, [])  # the main process contributes the reference statistics
    full = FidEvaluator(extractor.name, 16).merge([main.state()])
    a, b = FidEvaluator(extractor.name, 16), FidEvaluator(extractor.name, 16)
    for ev, part in ((a, rows[0::2]), (b, rows[1::2])):
        keys = [(r["sample_id"], r["k"]) for r in part]
        features = extractor([Image.open(ctx.run.path / r["file"]).convert("RGB") for r in part])
        ev.update(keys, features)
        full.update(keys, features)
    b.update([(rows[1]["sample_id"], rows[1]["k"])], np.zeros((1, 16)))  # a repeat on the same rank: skipped
    merged = FidEvaluator(extractor.name, 16).merge(pickle.loads(pickle.dumps([b.state(), main.state(), a.state()])))
    res, expected = merged.compute(), full.compute()
    assert res["fid"] == pytest.approx(expected["fid"], rel=1e-9)
    for k in ("0", "1", "2"):
        assert res["per_k"][k]["fid"] == pytest.approx(expected["per_k"][k]["fid"], rel=1e-9, abs=1e-15)
    assert res["num_generated"] == len(rows) and merged.records() == full.records()
    # The same images in batches of another composition: equal up to float32 feature noise.
    assert score_fid(ctx, rows).compute()["fid"] == pytest.approx(res["fid"], rel=1e-4)
    with pytest.raises(SpbenchError, match="two processes"):
        FidEvaluator(extractor.name, 16).merge([a.state(), a.state()])


def _random_inception_weights(path, monkeypatch):
    """torch-fidelity's FID Inception with random weights, saved like the real file (building it
    needs its weights, so its loading is switched off for this one construction)."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf

    with monkeypatch.context() as m:
        m.setattr(tf, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(tf.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
        torch.manual_seed(0)
        module = tf.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(module.state_dict(), path)


def test_inception_weights_from_a_path_or_torch_home(tmp_path, monkeypatch):
    from torchmetrics.image.fid import FrechetInceptionDistance

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(SpbenchError) as e:
        load_extractor("pt_inception-2015-12-05")
    msg = str(e.value)
    expected_dir = tmp_path / "torch" / "hub" / "checkpoints"
    assert str(expected_dir) in msg and "weights-inception-2015-12-05-6726825d.pth" in msg and "\n" not in msg
    with pytest.raises(SpbenchError, match="not found"):
        load_extractor(tmp_path / "nowhere.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SpbenchError, match="not torch-fidelity"):
        load_extractor(tmp_path / "junk.pth")

    expected_dir.mkdir(parents=True)
    weights = expected_dir / "weights-inception-2015-12-05-6726825d.pth"
    _random_inception_weights(weights, monkeypatch)
    assert inception_weights("pt_inception-2015-12-05") == inception_weights(str(weights)) == weights
    extractor = load_extractor("pt_inception-2015-12-05")
    assert extractor.num_features == 2048 and "antialias" in extractor.resize
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (CANVAS, CANVAS, 3), dtype=np.uint8))
    reference = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(weights))
    with torch.no_grad():
        expected = reference.inception(uint8_batch([image])).double().numpy()
    scale = np.abs(expected).max()  # random weights give small features: compare relative to them
    assert scale > 0
    np.testing.assert_allclose(extractor([image]), expected, rtol=1e-4, atol=1e-5 * scale)
    tf1 = load_extractor(weights, resize="tf1")
    assert "TensorFlow" in tf1.resize and tf1.module.use_antialias is False and extractor.module.use_antialias
    with pytest.raises(SpbenchError, match="fid_resize"):
        load_extractor(weights, resize="nearest")
