"""Pose ControlNets on newer bases (SDXL, SD3, FLUX.1-dev) with tiny random models of each
architecture (built as diffusers' own pipeline tests build theirs): settings layering, records,
per-request noise in each base's latent shape, batch invariance, real-code loading.

References: torch.randn with each request's own generator (the engine's seed scheme) for the
initial noise, diffusers' own ``FluxPipeline._pack_latents`` for FLUX's packed tokens, the
diffusers ``from_pretrained`` of a folder written by ``save_pretrained`` for the loaders, and
test_generation.py's tolerance (1/255) for batch 1 vs batch 2.
"""

import json

import numpy as np
import pytest
import torch

from helpers import generate_run, run_pixels, spbench_in_process
from spbench.config import DEFAULTS
from spbench.errors import SpbenchError
from spbench.methods import Method, get_method_class
from spbench.results.protocol import departures
from spbench.run.requests import MethodContext
from spbench.run.resolve import resolve_run

# One method per base (the SDXL one samples ancestrally, the FLUX one wraps its ControlNet in a
# FluxMultiControlNetModel); the other two share their code and are run end to end below.
PER_BASE = ["controlnet-sdxl-xinsir", "controlnet-sd3", "controlnet-flux-union-pro"]
ALL = PER_BASE + ["controlnet-sdxl-thibaud", "controlnet-flux-union"]
HUMAN = {"dataset.name": "sample-humanart"}


def _resolve(method: str, profile: str = "tiny", sets=(), **flags):
    flags = {**HUMAN, "method.name": method, **{k.replace("__", "."): v for k, v in flags.items()}}
    return resolve_run(flags, profile, list(sets), get_method_class)


class _Recommends(Method):
    """A method recommending its own settings (the mechanism, apart from any real model card)."""

    name = "recommends"
    condition = "openpose"
    recommended = {"generation.steps": 30, "generation.canvas": 1024, "generation.scheduler": "ddim"}

    def load(self):
        pass

    def generate(self, prompts, conditions, latents, settings):
        raise AssertionError("not generated")


def test_recommended_settings_sit_between_the_profile_and_the_flags():
    find = lambda name: _Recommends  # noqa: E731
    paper = resolve_run({**HUMAN, "method.name": "recommends"}, "paper", [], find).config
    assert paper["generation"]["canvas"] == 1024  # over the paper profile's 512
    assert (paper["generation"]["steps"], paper["generation"]["scheduler"]) == (30, "ddim")
    assert paper["method"]["recommended"] == _Recommends.recommended  # recorded with the run
    # Flags and --set win over the method's recommendations.
    mine = resolve_run({**HUMAN, "method.name": "recommends", "generation.steps": 2}, "paper",
                       ["generation.canvas=256"], find).config
    assert (mine["generation"]["steps"], mine["generation"]["canvas"], mine["generation"]["scheduler"]) == (2, 256, "ddim")
    # A tiny profile keeps the canvas it names (its tiny models are built for it); the rest applies.
    tiny = resolve_run({**HUMAN, "method.name": "recommends"}, "tiny", [], find).config
    assert (tiny["generation"]["canvas"], tiny["generation"]["steps"]) == (64, 30)
    # A method without recommendations records none (run folders made before keep resuming).
    assert "recommended" not in resolve_run({**HUMAN, "method.name": "controlnet"}, "tiny", [], get_method_class).config["method"]


@pytest.mark.parametrize("method", ALL)
def test_paper_profile_runs_the_card_settings_and_lists_them_as_departures(method):
    cls = get_method_class(method)
    config = _resolve(method, "paper").config
    for key, value in cls.recommended.items():
        section, _, leaf = key.partition(".")
        node = config[section]
        for part in leaf.split(".")[:-1]:
            node = node[part]
        assert node[leaf.split(".")[-1]] == value, key
    found = departures(config, method)
    base = config["models"][cls.base_model]
    assert "/" in base and base != config["models"]["base"]  # the real hub id, not SD1.5
    assert f"models.{cls.base_model}={base} (paper: models.base={config['models']['base']})" in found
    paper = DEFAULTS["generation"]
    for key in ("steps", "guidance_scale", "scheduler", "canvas"):
        if config["generation"][key] != paper[key]:
            assert any(d.startswith(f"generation.{key}=") for d in found), (key, found)


def test_flux_packs_per_request_noise_as_diffusers_does():
    from diffusers import FluxPipeline

    from spbench.models.flux import pack_latents

    x = torch.randn(3, 16, 8, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pack_latents(x), FluxPipeline._pack_latents(x, 3, 16, 8, 6))


def _spy_on_initial_latents(method, seen: list):
    """Record the ``latents`` each pipeline call hands to its prepare_latents (the noise the
    denoising starts from, in the shape the pipeline takes)."""
    load = method.load

    def load_and_spy():
        load()
        prepare = method.pipe.prepare_latents

        def spy(*args, **kwargs):
            seen.append((args[7] if len(args) > 7 else kwargs["latents"]).detach().clone())
            return prepare(*args, **kwargs)

        method.pipe.prepare_latents = spy

    method.load = load_and_spy


@pytest.mark.parametrize("method", PER_BASE)
def test_each_request_gets_its_own_noise_and_image_whatever_the_batch(method, tmp_path):
    from diffusers import FluxPipeline

    resolved = _resolve(method, generation__steps=2, generation__images_per_prompt=1, dataset__limit=2)
    cfg, split = resolved.config, resolved.split
    latents, pixels = {}, {}
    for batch_size, global_seed in ((2, 1), (1, 2)):
        method_obj = resolved.method_cls(MethodContext(cfg))
        seen = []
        _spy_on_initial_latents(method_obj, seen)
        # Neither the tiny models (built anew by each load) nor the pipeline may draw from torch's
        # global generator.
        torch.manual_seed(global_seed)
        run, counts = generate_run(tmp_path / f"bs{batch_size}", method_obj, split, cfg, batch_size=batch_size)
        assert counts["generated_here"] == 2 and len(seen) == 2 // batch_size
        latents[batch_size] = torch.cat(seen)
        pixels[batch_size] = run_pixels(run)
    # The same noise for each request in a batch of two as alone, bitwise.
    assert torch.equal(latents[1], latents[2])
    # ... and it is torch.randn from that request's own seed, in the base's unpacked latent
    # shape (packed as diffusers packs FLUX's), 16 channels for SD3 and FLUX, 4 for SDXL.
    rows = [json.loads(line) for line in (tmp_path / "bs1" / "manifest.jsonl").read_text().splitlines()]
    channels = {"controlnet-sdxl-xinsir": 4}.get(method, 16)
    h = w = cfg["generation"]["canvas"] // 8
    for i, row in enumerate(rows):
        noise = torch.randn((1, channels, h, w), generator=torch.Generator().manual_seed(row["seed"]))
        if "flux" in method:
            noise = FluxPipeline._pack_latents(noise, 1, channels, h, w)
        assert torch.equal(latents[1][i:i + 1], noise), row["sample_id"]
    # The images agree (test_generation.py's tolerance) and differ between requests.
    a, b = pixels[1], pixels[2]
    assert a.keys() == b.keys() and len(a) == 2
    assert max(int(np.abs(a[k] - b[k]).max()) for k in a) <= 1
    first, second = sorted(a)
    assert np.abs(a[first] - a[second]).max() > 0


def test_compile_marks_the_transformer_of_an_mmdit_base():
    from spbench.models.pipelines import compile_step_modules

    method = get_method_class("controlnet-sd3")(MethodContext(_resolve("controlnet-sd3").config))
    method.load()
    assert method.pipe.transformer._compiled_call_impl is None
    assert compile_step_modules(method) == ["transformer", "controlnet"]
    # what nn.Module.compile() sets (tests/test_compile.py); the text encoders and VAE stay eager
    assert method.pipe.transformer._compiled_call_impl is not None and method.pipe.controlnet._compiled_call_impl is not None
    assert method.pipe.vae._compiled_call_impl is None and method.pipe.text_encoder_3._compiled_call_impl is None


@pytest.mark.parametrize("args, words", [
    # OpenPose-18 needs human keypoints: AP-10K asks for another pose drawing, before any image.
    (["--method", "controlnet-sdxl-xinsir", "--dataset", "sample-ap10k"],
     ["openpose18", "ap10k", "method.options.condition=openpose"]),
    (["--method", "controlnet-flux-union", "--set", "generation.negative_prompt=blurry"],
     ["negative_prompt", "no classifier-free guidance"]),
    (["--method", "controlnet-sd3", "--set", "generation.scheduler=unipc"], ["unipc", "flow-euler"]),
    (["--method", "controlnet-sd3", "--set", "generation.canvas=72"], ["generation.canvas=72", "multiple of 16"]),
    (["--method", "controlnet-flux-union", "--set", "method.options.control_mode=pose"], ["control_mode", "pose: 4"]),
    (["--method", "controlnet-sdxl-thibaud", "--set", "models.controlnet_sdxl_thibaud=null"],
     ["models.controlnet_sdxl_thibaud", "--checkpoint"]),
])
def test_bad_settings_are_one_line_errors_before_any_image(args, words, tmp_path):
    defaults = ["--dataset", "sample-humanart"] if "--dataset" not in args else []
    result = spbench_in_process("run", *args, *defaults, "--profile", "tiny", "--limit", "1", "--out", tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("tiny profile")]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert not list(tmp_path.rglob("*.png"))


@pytest.mark.parametrize("method", [
    "controlnet-flux-union",  # the one not run by the batch test above; the others as slow tests
    *(pytest.param(m, marks=pytest.mark.slow) for m in ALL if m != "controlnet-flux-union"),
])
def test_each_method_runs_end_to_end_on_the_tiny_profile(method, tmp_path):
    result = spbench_in_process("run", "--method", method, "--dataset", "sample-humanart", "--profile", "tiny",
                                "--limit", "2", "--steps", "2", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / f"sample-humanart-{method}-tiny"
    assert len(list((run / "images").glob("*.png"))) == 2 * DEFAULTS["generation"]["images_per_prompt"]
    record = json.loads((run / "result.json").read_text())
    cls = get_method_class(method)
    assert record["tiny"] is True and record["method"]["condition"] == "openpose18"
    assert record["config"]["method"]["recommended"] == cls.recommended
    gen = record["config"]["generation"]
    assert gen["steps"] == 2 and gen["canvas"] == 64 and gen["dtype"] == "auto"  # the flag and the tiny profile win
    assert gen["scheduler"] == cls.recommended["generation.scheduler"]
    assert gen["guidance_scale"] == cls.recommended["generation.guidance_scale"]
    assert f"models.{cls.base_model}=tiny://{cls.base_model.split('_')[0]} (tiny)" in record["departures"]
    assert record["models"]["recommended_by"] == cls.recommended_by
    assert 0.0 <= record["metrics"]["pose"]["AP"] <= 100.0


@pytest.mark.slow
@pytest.mark.parametrize("base", ["sdxl", "sd3", "flux"])
def test_loaders_read_a_saved_model_folder(base, tmp_path):
    """The real-weights path (``from_pretrained`` of the hub layout) on tiny models saved locally."""
    from spbench.models import flux, sd3, sdxl

    module = {"sdxl": sdxl, "sd3": sd3, "flux": flux}[base]
    built = getattr(module, f"build_tiny_{base}")()
    controlnet = {"sdxl": sdxl.build_tiny_controlnet_sdxl, "sd3": sd3.build_tiny_controlnet_sd3,
                  "flux": flux.build_tiny_controlnet_flux_union}[base]()
    for field, value in vars(built).items():
        if hasattr(value, "save_pretrained"):
            value.save_pretrained(tmp_path / "base" / field)
    (tmp_path / "base" / "scheduler").mkdir()
    (tmp_path / "base" / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "FlowMatchEulerDiscreteScheduler" if base != "sdxl" else "EulerDiscreteScheduler",
         **built.scheduler_config}))
    controlnet.save_pretrained(tmp_path / "controlnet")
    loaded = getattr(module, f"load_{base}_components")(str(tmp_path / "base"))
    for a, b in zip(built.modules(), loaded.modules(), strict=True):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    tokenizers = [n for n in vars(built) if n.startswith("tokenizer")]
    for name in tokenizers:
        text = "a dog on the grass"
        assert getattr(built, name)(text).input_ids == getattr(loaded, name)(text).input_ids
    load_cn = getattr(module, f"load_{base}_controlnet" if base != "flux" else "load_flux_controlnet")
    again = load_cn(str(tmp_path / "controlnet"), "models.test")
    assert all(torch.equal(p, q) for p, q in zip(controlnet.state_dict().values(), again.state_dict().values(), strict=True))
    with pytest.raises(SpbenchError, match="does not exist"):
        load_cn(str(tmp_path / "missing"), "models.test")


@pytest.mark.slow
def test_an_animal_dataset_runs_with_the_coco_skeleton_drawing(tmp_path):
    result = spbench_in_process("run", "--method", "controlnet-sdxl-thibaud", "--dataset", "sample-ap10k",
                                "--profile", "tiny", "--limit", "1", "--steps", "2", "--out", tmp_path,
                                "--set", "method.options.condition=openpose")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "sample-ap10k-controlnet-sdxl-thibaud-tiny" / "result.json").read_text())
    assert record["method"]["condition"] == "openpose"
    assert record["config"]["method"]["options"]["condition"] == "openpose"
