"""The T2I-Adapter, depth- and mask-ControlNet baselines, their condition models (depth, masks) and the condition cache,
with tiny models on the shipped sample."""

import json
import shutil

import numpy as np
import pytest
import torch
from accelerate import PartialState
from PIL import Image
from typer.testing import CliRunner

from spbench.canvas import CanvasTransform
from spbench.cli import app
from spbench.conditions import render_condition
from spbench.conditions.extracted import ConditionCache
from spbench.files import cache_root
from spbench.config import load_profile, resolve
from spbench.data.registry import load_split
from spbench.errors import SpbenchError
from spbench.generation import engine
from spbench.methods import get_method_class
from spbench.models import condition_models
from spbench.run.folder import RunFolder
from spbench.run.requests import GenerationSettings, MethodContext, Request

SPLIT = load_split("sample").limit(2)
ID1, ID2 = (s.sample_id for s in SPLIT.samples)  # 320x240 with one box; 256x320 with two


def _config(tmp_path, *sets, **gen):
    flags = {f"generation.{k}": v for k, v in {"steps": 2, "samples": 1, **gen}.items()}
    return resolve(load_profile("tiny"), "ap10k", flags, [f"paths.cache={tmp_path / 'cache'}", *sets])


def _method(name, cfg):
    cfg = json.loads(json.dumps(cfg))
    cfg["method"]["name"] = name
    return get_method_class(name)(MethodContext(cfg))


def _run(path, cfg, method_name):
    method = _method(method_name, cfg)
    cfg = method.context.config
    run = RunFolder(path)
    run.start(cfg, {"run": run.path.name}, list(SPLIT.samples))
    requests = engine.plan_requests(SPLIT, cfg["generation"])
    engine.generate(run, method, requests, GenerationSettings.from_config(cfg["generation"]),
                    cfg["generation"]["batch_size"], PartialState())
    return run, method


def _request(sample, image_path, size=64, mode="stretch"):
    return Request(sample, 0, 0, CanvasTransform.fit(sample.width, sample.height, size, mode), image_path)


def _requests(mode="stretch"):
    return [_request(s, SPLIT.image_path(s), mode=mode) for s in SPLIT.samples]


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


_TINY_SD = {}


@pytest.fixture(autouse=True)
def shared_tiny_sd(monkeypatch):
    """One tiny SD for the whole module (building it takes seconds; test_models covers the loader).
    Sharing is safe: on the CPU in float32 nothing moves or changes it."""
    from spbench.models import stable_diffusion

    real = stable_diffusion.load_sd_components

    def shared(base):
        if base != "tiny://sd15":
            return real(base)
        if base not in _TINY_SD:
            _TINY_SD[base] = real(base)
        return _TINY_SD[base]

    monkeypatch.setattr(stable_diffusion, "load_sd_components", shared)


@pytest.fixture
def counted(monkeypatch):
    """Counts calls of the condition models' loaders and inference functions."""
    calls = {}

    def wrap(name):
        real = getattr(condition_models, name)

        def counting(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        monkeypatch.setattr(condition_models, name, counting)

    for name in ("load_depth_estimator", "estimate_depth", "load_segmenter", "segment_boxes"):
        wrap(name)
    return calls


# -- depth normalisation and mask rendering ------------------------------------------------------
def test_depth_normalisation_matches_hand_computed_values():
    from spbench_baselines.controlnet_depth import depth_to_image

    depth = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    # percentile: P2 = 1.08, P85 = 4.4 (linear interpolation); v = 1 - (d - 1.08) / 3.32, 255 v truncated.
    out = np.asarray(depth_to_image(depth, "percentile"))
    assert out.shape == (1, 5, 3) and (out == out[:, :, :1]).all()
    assert out[0, :, 0].tolist() == [255, 184, 107, 30, 0]
    # minmax: v = 1 - (d - 1) / 4 -> 255, 191.25, 127.5, 63.75, 0.
    assert np.asarray(depth_to_image(depth, "minmax"))[0, :, 0].tolist() == [255, 191, 127, 63, 0]
    assert np.asarray(depth_to_image(np.full((2, 2), 3.0))).max() == 0  # no range: black


def test_mask_is_the_union_white_on_black():
    from spbench_baselines.controlnet_mask import render_union

    a = np.array([[1, 0, 0], [0, 0, 0]], dtype=bool)
    b = np.array([[1, 1, 0], [0, 0, 1]], dtype=bool)
    out = np.asarray(render_union(np.stack([a, b]), (3, 2)))
    assert out.shape == (2, 3, 3) and out[:, :, 0].tolist() == [[255, 255, 0], [0, 0, 255]]
    assert (out == out[:, :, :1]).all()


@pytest.mark.parametrize("mode, expected", [
    # stretch: x * 64/w, y * 64/h; boxes (x, y, w, h) -> (x1, y1, x2, y2).
    ("stretch", {ID1: [[15.4, 62 * 64 / 240, 63.0, 224 * 64 / 240]],
                 ID2: [[0.0, 35.4, 28.0, 52.0], [31.75, 31.0, 61.75, 46.4]]}),
    # letterbox: one scale min(64/w, 64/h), centred: ID1 s = 0.2, offset y 8; ID2 s = 0.2, offset x 6.4.
    ("letterbox", {ID1: [[15.4, 20.4, 63.0, 52.8]],
                   ID2: [[6.4, 35.4, 28.8, 52.0], [31.8, 31.0, 55.8, 46.4]]}),
])
def test_sam_is_prompted_with_the_gt_boxes_on_the_canvas(tmp_path, monkeypatch, mode, expected):
    from transformers import SamHQProcessor

    seen = {}
    real_call = SamHQProcessor.__call__

    def spy(self, images=None, *args, input_boxes=None, **kwargs):
        seen[len(seen)] = (images.size, input_boxes)
        return real_call(self, images, *args, input_boxes=input_boxes, **kwargs)

    monkeypatch.setattr(SamHQProcessor, "__call__", spy)
    cfg = _config(tmp_path, f"generation.canvas_mode={mode}")
    method = _method("controlnet-mask", cfg)
    for request in _requests(mode):
        image = method.condition_image(request)
        assert image.size == (64, 64) and image.mode == "RGB"
    for i, sample in enumerate(SPLIT.samples):
        size, boxes = seen[i]
        assert size == (64, 64)
        np.testing.assert_allclose(np.array(boxes[0]), np.array(expected[sample.sample_id]), atol=1e-9)


# -- the condition cache -------------------------------------------------------------------------
def test_cache_hits_only_for_the_same_settings_transform_and_image_bytes(tmp_path):
    sample = SPLIT.samples[0]
    image = tmp_path / "ref.jpg"
    shutil.copy(SPLIT.image_path(sample), image)
    request = _request(sample, str(image))
    picture = Image.new("RGB", (64, 64), (10, 20, 30))
    cache = ConditionCache(tmp_path, "zoedepth", {"model": "m", "normalisation": "percentile"})
    assert cache.get(request) is None
    cache.put(request, picture)
    assert cache.path(request) == tmp_path / "conditions" / cache.key / f"{sample.sample_id}.png"
    assert cache.key.startswith("zoedepth-")
    assert np.array_equal(np.asarray(cache.get(request)), np.asarray(picture))
    assert json.loads((cache.folder / "settings.json").read_text())["settings"]["normalisation"] == "percentile"
    # Other settings: another folder. Another canvas transform or other image bytes: a miss.
    other = ConditionCache(tmp_path, "zoedepth", {"model": "m", "normalisation": "minmax"})
    assert other.folder != cache.folder and other.get(request) is None
    assert cache.get(_request(sample, str(image), mode="letterbox")) is None
    assert cache.get(_request(sample, str(image), size=32)) is None
    image.write_bytes(image.read_bytes() + b"\0")
    assert cache.get(request) is None
    assert not list(tmp_path.rglob("*.tmp"))


def test_cache_folder_comes_from_config_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SPBENCH_CACHE", str(tmp_path / "env"))
    assert cache_root({"paths": {"cache": str(tmp_path / "cfg")}}) == tmp_path / "cfg"
    assert cache_root({"paths": {"cache": None}}) == tmp_path / "env"
    monkeypatch.delenv("SPBENCH_CACHE")
    assert cache_root({"paths": {"cache": None}}).parts[-2:] == (".cache", "spbench")


# -- condition models ----------------------------------------------------------------------------------
def test_tiny_condition_models_round_trip_through_a_folder(tmp_path):
    canvas = Image.open(SPLIT.image_path(SPLIT.samples[0])).convert("RGB").resize((64, 64))
    other = Image.open(SPLIT.image_path(SPLIT.samples[1])).convert("RGB").resize((64, 64))

    depth = condition_models.build_tiny_zoedepth()
    condition_models.save_condition_model(depth, tmp_path / "zoe")
    loaded = condition_models.load_depth_estimator(str(tmp_path / "zoe"))
    assert type(loaded.model).__name__ == "ZoeDepthForDepthEstimation" and loaded.source == str(tmp_path / "zoe")
    a, b = condition_models.estimate_depth(depth, canvas), condition_models.estimate_depth(loaded, canvas)
    assert a.shape == (64, 64) and np.array_equal(a, b)
    assert np.abs(a - condition_models.estimate_depth(depth, other)).max() > 1e-3  # the image reaches the depth

    sam = condition_models.build_tiny_sam_hq()
    condition_models.save_condition_model(sam, tmp_path / "sam")
    loaded = condition_models.load_segmenter(str(tmp_path / "sam"))
    assert type(loaded.model).__name__ == "SamHQModel"
    boxes = [[10.0, 10.0, 40.0, 50.0], [0.0, 0.0, 20.0, 20.0]]
    m1, m2 = condition_models.segment_boxes(sam, canvas, boxes), condition_models.segment_boxes(loaded, canvas, boxes)
    assert m1.shape == (2, 64, 64) and m1.dtype == bool and np.array_equal(m1, m2)


@pytest.mark.parametrize("call, words", [
    (lambda: condition_models.load_depth_estimator("tiny://zoe"), ["tiny://zoe", "models.depth_estimator", "tiny://zoedepth"]),
    (lambda: condition_models.load_segmenter(None), ["models.segmenter", "conditions_dir"]),
    (lambda: condition_models.load_segmenter("nobody/no-such-sam"), ["nobody/no-such-sam", "--set models.segmenter="]),
])
def test_extractor_errors_are_one_line_and_name_the_setting(call, words):
    with pytest.raises(SpbenchError) as e:
        call()
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words)


# -- end to end through the engine ---------------------------------------------------------------
@pytest.mark.parametrize("method_name, calls", [
    ("controlnet-depth", ("load_depth_estimator", "estimate_depth")),
    ("controlnet-mask", ("load_segmenter", "segment_boxes")),
])
def test_extracted_conditions_are_cached_and_not_reused_for_other_settings(tmp_path, counted, method_name, calls):
    cfg = _config(tmp_path)
    run, method = _run(tmp_path / "first", cfg, method_name)
    assert {k: counted.get(k) for k in calls} == {calls[0]: 1, calls[1]: 2}
    assert len(list((run.path / "images").glob("*.png"))) == 2
    cached = {p.name: _pixels(p) for p in _cache_folder(method).glob("*.png")}
    assert cached.keys() == {f"{ID1}.png", f"{ID2}.png"}
    for name, pixels in cached.items():  # the run's condition files are the cached maps
        assert np.array_equal(_pixels(run.path / "conditions" / name), pixels)

    counted.clear()
    _run(tmp_path / "second", cfg, method_name)
    assert not counted  # every map came from the cache: no model loaded, none run

    changed = "method.options.depth_normalisation=minmax" if method_name == "controlnet-depth" else "models.segmenter=" + str(_tiny_sam_folder(tmp_path))
    other = _method(method_name, _config(tmp_path, changed))
    for request in _requests():
        other.condition_image(request)
    assert counted[calls[1]] == 2 and _cache_folder(other) != _cache_folder(method)


def _cache_folder(method):
    return (method.cache if method.name == "controlnet-depth" else method.masks.cache).folder


def _tiny_sam_folder(tmp_path):
    folder = tmp_path / "sam-folder"
    condition_models.save_condition_model(condition_models.build_tiny_sam_hq(seed=1), folder)
    return folder


@pytest.mark.parametrize("method_name, resample", [
    ("controlnet-depth", Image.Resampling.BICUBIC),
    ("controlnet-mask", Image.Resampling.NEAREST),
])
def test_precomputed_condition_folder(tmp_path, counted, method_name, resample):
    folder = tmp_path / "maps"
    folder.mkdir()
    s1 = SPLIT.samples[0]
    rng = np.random.default_rng(0)
    # One map at the original image size (official scripts), one already on the canvas.
    original = Image.fromarray(rng.integers(0, 256, (s1.height, s1.width, 3), dtype=np.uint8))
    on_canvas = Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).convert("RGB")
    original.save(folder / f"{ID1}.png")
    on_canvas.save(folder / f"{ID2}.png")
    run, _ = _run(tmp_path / "run", _config(tmp_path, f"method.options.conditions_dir={folder}"), method_name)
    assert np.array_equal(_pixels(run.path / "conditions" / f"{ID1}.png"), np.asarray(original.resize((64, 64), resample)))
    assert np.array_equal(_pixels(run.path / "conditions" / f"{ID2}.png"), np.asarray(on_canvas))
    assert len(list((run.path / "images").glob("*.png"))) == 2
    assert not counted  # no extractor involved

    (folder / f"{ID2}.png").unlink()
    with pytest.raises(SpbenchError) as e:
        _run(tmp_path / "run2", _config(tmp_path, f"method.options.conditions_dir={folder}"), method_name)
    assert str(folder / f"{ID2}.png") in str(e.value) and "\n" not in str(e.value)


def test_depth_from_a_folder_extractor_and_masked_depth(tmp_path):
    """models.depth_estimator as a folder; depth_mask=boxes keeps depth only inside the GT box."""
    condition_models.save_condition_model(condition_models.build_tiny_zoedepth(), tmp_path / "zoe")
    folder = f"models.depth_estimator={tmp_path / 'zoe'}"
    request = _requests()[0]
    depth = np.asarray(_method("controlnet-depth", _config(tmp_path, folder)).condition_image(request))
    boxed = _method("controlnet-depth", _config(tmp_path, folder, "method.options.depth_mask=boxes"))
    masked = np.asarray(boxed.condition_image(request))
    # ID1's box on the canvas: x 15.4..63, y 16.53..59.73 -> pixel centres in columns 15..62, rows 17..59.
    inside = np.zeros((64, 64), dtype=bool)
    inside[17:60, 15:63] = True
    assert np.array_equal(masked[inside], depth[inside]) and masked[~inside].max() == 0
    assert depth[inside].max() > 0


def test_sam_masked_depth_keeps_depth_inside_the_mask(tmp_path):
    request = _requests()[1]
    masked = np.asarray(_method("controlnet-depth", _config(tmp_path, "method.options.depth_mask=sam")).condition_image(request))
    depth = np.asarray(_method("controlnet-depth", _config(tmp_path)).condition_image(request))
    mask = np.asarray(_method("controlnet-mask", _config(tmp_path)).condition_image(request))[:, :, 0] > 0
    assert 0 < mask.sum() < mask.size
    assert np.array_equal(masked[mask], depth[mask]) and masked[~mask].max() == 0


def test_unknown_option_is_an_error_with_a_suggestion(tmp_path):
    with pytest.raises(SpbenchError, match="did you mean 'depth_normalisation'"):
        _method("controlnet-depth", _config(tmp_path, "method.options.depth_normalization=minmax"))
    with pytest.raises(SpbenchError, match="depth_mask='box' is not one of none, sam, boxes"):
        _method("controlnet-depth", _config(tmp_path, "method.options.depth_mask=box"))


# -- T2I-Adapter ---------------------------------------------------------------------------------
def _openpose(sample):
    return render_condition("openpose", sample, CanvasTransform.fit(sample.width, sample.height, 64))


def test_t2i_adapter_features_fit_the_tiny_unet_and_follow_the_condition(tmp_path):
    from diffusers import StableDiffusionPipeline

    from spbench.models.stable_diffusion import make_scheduler

    method = _method("t2i-adapter", _config(tmp_path))
    method.load()
    adapter = method.pipe.adapter
    # One feature map per UNet down block, at that block's width and resolution (64px -> 8x8 latents).
    feats = adapter(torch.zeros(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 8, 8), (32, 4, 4), (64, 2, 2), (64, 1, 1)]
    assert all(p.abs().max() > 0 for p in adapter.parameters() if p.dim() > 1)

    a, b = _openpose(SPLIT.samples[0]), _openpose(SPLIT.samples[1])
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    settings = GenerationSettings(steps=2, width=64, height=64)
    one = method.generate(["a dog"] * 2, [a, b], latents.clone(), settings)
    swapped = method.generate(["a dog"] * 2, [b, a], latents.clone(), settings)
    assert np.abs(_arr(one[0]) - _arr(swapped[0])).max() > 0  # same noise and prompt, other pose

    # Scale 0 removes the adapter: diffusers' plain SD pipeline on the same components gives the same images.
    unscaled = method.generate(["a dog"] * 2, [a, b], latents.clone(), GenerationSettings(steps=2, width=64, height=64, conditioning_scale=0.0))
    sd = method.sd
    plain = StableDiffusionPipeline(vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet,
                                    scheduler=make_scheduler("unipc", sd.scheduler_config), safety_checker=None,
                                    feature_extractor=None, requires_safety_checker=False)
    plain.set_progress_bar_config(disable=True)
    ref = plain(prompt=["a dog"] * 2, latents=latents.clone(), num_inference_steps=2, height=64, width=64).images
    diff = max(int(np.abs(_arr(x).astype(int) - _arr(y).astype(int)).max()) for x, y in zip(unscaled, ref))
    assert diff <= 1, diff  # same arithmetic up to float reassociation (single vs multi-thread kernels)
    assert np.abs(_arr(one[0]) - _arr(ref[0])).max() > 0


def _arr(image):
    return np.asarray(image, dtype=np.int16)


def test_t2i_adapter_from_a_checkpoint_folder(tmp_path):
    from spbench.models.stable_diffusion import load_sd_components
    from spbench_baselines.t2i_adapter import adapter_for_unet

    unet = load_sd_components("tiny://sd15").unet
    adapter_for_unet(unet, seed=7).save_pretrained(tmp_path / "adapter")
    cfg = _config(tmp_path, f"method.checkpoint={tmp_path / 'adapter'}")
    method = _method("t2i-adapter", cfg)
    method.load()
    for p, q in zip(method.pipe.adapter.parameters(), adapter_for_unet(unet, seed=7).parameters()):
        assert torch.equal(p, q)
    assert method.identity()["t2i_adapter"] == str(tmp_path / "adapter")

    from diffusers import T2IAdapter

    T2IAdapter(channels=[32, 64, 64, 64], num_res_blocks=1).save_pretrained(tmp_path / "wrong")
    method = _method("t2i-adapter", _config(tmp_path, f"method.checkpoint={tmp_path / 'wrong'}"))
    with pytest.raises(SpbenchError) as e:
        method.load()
    assert "[32, 64, 64, 64]" in str(e.value) and "[32, 32, 64, 64]" in str(e.value) and "\n" not in str(e.value)


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("method_name", ["t2i-adapter", "controlnet-depth", "controlnet-mask"])
def test_cli_run_writes_a_result_record(tmp_path, monkeypatch, method_name):
    monkeypatch.setenv("SPBENCH_CACHE", str(tmp_path / "cache"))
    args = ["run", "--method", method_name, "--dataset", "sample", "--profile", "tiny", "--steps", "2",
            "--limit", "2", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / f"sample-ap10k-{method_name}-tiny"
    record = json.loads((run / "result.json").read_text())
    assert record["tiny"] is True and "pose" in record["metrics"]
    assert len(list((run / "images").glob("*.png"))) == 6
    info = json.loads((run / "run.json").read_text())
    assert info["method"]["condition"] == {"t2i-adapter": "openpose", "controlnet-depth": "depth", "controlnet-mask": "mask"}[method_name]
    if method_name != "t2i-adapter":  # extracted maps went to $SPBENCH_CACHE
        assert len(list((tmp_path / "cache" / "conditions").glob("*/*.png"))) == 2


# -- generation.condition_render: official extracts at the original size, then PIL bilinear ------
def _original(sample) -> Image.Image:
    return Image.open(SPLIT.image_path(sample)).convert("RGB")


def _original_boxes(sample) -> list[list[float]]:
    return [[x, y, x + w, y + h] for x, y, w, h in (inst.bbox for inst in sample.labelled_instances)]


def _hand_depth(sample, normalisation="percentile") -> Image.Image:
    from spbench_baselines.controlnet_depth import depth_to_image

    depth = condition_models.estimate_depth(condition_models.load_depth_estimator("tiny://zoedepth"), _original(sample))
    return depth_to_image(depth, normalisation)


def _hand_mask(sample) -> np.ndarray:
    original = _original(sample)
    masks = condition_models.segment_boxes(condition_models.load_segmenter("tiny://sam-hq"), original, _original_boxes(sample))
    return masks.any(axis=0)


def _bilinear(array: np.ndarray, size=(64, 64)) -> np.ndarray:
    return np.asarray(Image.fromarray(array.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR))


@pytest.mark.parametrize("depth_mask", ["none", "sam", "boxes"])
def test_official_depth_is_extracted_at_the_original_size_then_bilinear(tmp_path, depth_mask):
    official = _method("controlnet-depth", _config(tmp_path, f"method.options.depth_mask={depth_mask}", condition_render="official"))
    for sample, request in zip(SPLIT.samples, _requests()):
        depth = np.asarray(_hand_depth(sample))
        assert depth.shape[:2] == (sample.height, sample.width)
        if depth_mask == "sam":
            depth = np.where(_hand_mask(sample)[:, :, None], depth, 0)
        elif depth_mask == "boxes":  # pixel centres inside the original box
            ys, xs = np.mgrid[:sample.height, :sample.width] + 0.5
            keep = np.zeros((sample.height, sample.width), dtype=bool)
            for x1, y1, x2, y2 in _original_boxes(sample):
                keep |= (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
            depth = np.where(keep[:, :, None], depth, 0)
        got = np.asarray(official.condition_image(request))
        assert got.shape == (64, 64, 3) and np.array_equal(got, _bilinear(depth))


def test_official_mask_is_segmented_at_the_original_size_with_original_boxes_then_bilinear(tmp_path, monkeypatch):
    from transformers import SamHQProcessor

    seen = []
    real_call = SamHQProcessor.__call__

    def spy(self, images=None, *args, input_boxes=None, **kwargs):
        seen.append((images.size, input_boxes))
        return real_call(self, images, *args, input_boxes=input_boxes, **kwargs)

    official = _method("controlnet-mask", _config(tmp_path, condition_render="official"))
    monkeypatch.setattr(SamHQProcessor, "__call__", spy)
    got = [np.asarray(official.condition_image(request)) for request in _requests()]
    monkeypatch.undo()
    for i, sample in enumerate(SPLIT.samples):
        size, boxes = seen[i]
        assert size == (sample.width, sample.height)
        np.testing.assert_allclose(np.array(boxes[0]), np.array(_original_boxes(sample)), atol=1e-9)
        union = np.repeat(np.where(_hand_mask(sample), 255, 0)[:, :, None], 3, axis=2)
        assert got[i].shape == (64, 64, 3) and np.array_equal(got[i], _bilinear(union))
    assert any(((g > 0) & (g < 255)).any() for g in got)  # bilinear: grey edges, as the official inference


@pytest.mark.parametrize("method_name", ["controlnet-depth", "controlnet-mask"])
def test_native_extraction_is_unchanged_and_cache_entries_differ_by_render_mode(tmp_path, counted, method_name):
    from spbench.conditions.extracted import reference_on_canvas
    from spbench_baselines.controlnet_depth import depth_to_image

    native = _method(method_name, _config(tmp_path))  # the tiny profile: native
    official = _method(method_name, _config(tmp_path, condition_render="official"))
    assert native.condition_render == "native" and official.condition_render == "official"
    for sample, request in zip(SPLIT.samples, _requests()):
        canvas = reference_on_canvas(request, "test")
        if method_name == "controlnet-depth":  # native: extracted on the canvas-sized reference image
            expected = np.asarray(depth_to_image(condition_models.estimate_depth(condition_models.load_depth_estimator("tiny://zoedepth"), canvas)))
        else:
            masks = condition_models.segment_boxes(condition_models.load_segmenter("tiny://sam-hq"), canvas,
                                             [[x, y, x + w, y + h] for x, y, w, h in (request.transform.bbox(i.bbox) for i in sample.labelled_instances)])
            expected = np.repeat(np.where(masks.any(axis=0), 255, 0).astype(np.uint8)[:, :, None], 3, axis=2)
        assert np.array_equal(np.asarray(native.condition_image(request)), expected)
        assert not np.array_equal(np.asarray(official.condition_image(request)), expected)
    n, o = _cache_folder(native), _cache_folder(official)
    assert n != o and n.parent == o.parent
    # Native keeps the key it had before the render mode mattered; official entries are original-size.
    settings = json.loads((n / "settings.json").read_text())["settings"]
    assert "frame" not in settings and json.loads((o / "settings.json").read_text())["settings"]["frame"] == "original"
    for sample in SPLIT.samples:
        assert Image.open(n / f"{sample.sample_id}.png").size == (64, 64)
        assert Image.open(o / f"{sample.sample_id}.png").size == (sample.width, sample.height)
    # An official entry is reused for another canvas size: no extraction, same original-size map.
    again = _method(method_name, _config(tmp_path, condition_render="official"))
    request = _request(SPLIT.samples[0], SPLIT.image_path(SPLIT.samples[0]), size=32)
    cached = Image.open(o / f"{ID1}.png").convert("RGB")
    counted.clear()
    assert np.array_equal(np.asarray(again.condition_image(request)), np.asarray(cached.resize((32, 32), Image.Resampling.BILINEAR)))
    assert not counted


def test_official_extraction_in_letterbox_is_pasted_at_the_image_offset(tmp_path):
    from spbench.conditions.official import resize_official

    official = _method("controlnet-mask", _config(tmp_path, "generation.canvas_mode=letterbox", condition_render="official"))
    sample, request = SPLIT.samples[0], _requests("letterbox")[0]  # 320x240: s = 0.2, 64x48 at y offset 8
    union = Image.fromarray(np.repeat(np.where(_hand_mask(sample), 255, 0).astype(np.uint8)[:, :, None], 3, axis=2))
    got = np.asarray(official.condition_image(request))
    assert got[:8].max() == 0 and got[56:].max() == 0
    assert np.array_equal(got[8:56], np.asarray(resize_official(union, "mask", 64, 48)))
