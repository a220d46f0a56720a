"""The paper profile end to end on model folders laid out exactly as the hub's repos are.

Issue #13 item 7: with real-size random weights in the hub's own layouts every method and metric
ran; these tests keep it that way. The folders are written in a tmp dir:

- SD1.5 (``stable-diffusion-v1-5/stable-diffusion-v1-5``): ``model_index.json`` naming
  ``StableDiffusionPipeline`` with a ``PNDMScheduler`` and ``safety_checker`` /
  ``feature_extractor`` entries; subfolders unet/ vae/ text_encoder/ tokenizer/ scheduler/
  safety_checker/ feature_extractor/, written by the pipeline's own ``save_pretrained``. UNet,
  VAE and text encoder have the real configs (``benchmarks/common.py``'s SD15_*; the text encoder
  with the hub's 49,408-row vocabulary and legacy ``eos_token_id=2``). The tokenizer is spbench's
  offline CLIP BPE tokenizer (the real vocabulary cannot be downloaded here); the scheduler config
  is the hub's PNDM one. The safety checker, which spbench never loads, has CLIP-L's vision
  widths but one layer (its layout and class are the hub's; it only costs time to write).
- ControlNet OpenPose (``lllyasviel/sd-controlnet-openpose``): config.json +
  diffusion_pytorch_model.safetensors, ``ControlNetModel.from_unet`` of the real-size UNet.
- T2I-Adapter OpenPose (``TencentARC/t2iadapter_openpose_sd14v1``): the hub config (full
  adapter, channels 320/640/1280/1280, 2 res blocks, downscale 8).
- ViTPose++-H, CLIP ViT-L/14 and Grounding-DINO-T: ``benchmarks/evaluation.py``'s
  ``save_real_metric_models`` (full size).
- FID Inception: torch-fidelity's ``inception-v3-compat`` state dict with random weights, saved
  as a .pth like ``weights-inception-2015-12-05-6726825d.pth``.

Everything is full size except the safety checker's depth. About 2.5 minutes on 2 CPU cores
(~75 s writing the folders) and ~12 GB of disk in the tmp dir; FID's reference statistics go to a
cache in the tmp dir. Run with ``pytest -m slow tests/test_real_layouts.py``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from spbench.cli import app

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# The hub's files, as they are in stable-diffusion-v1-5/stable-diffusion-v1-5.
SD15_MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.6.0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
# TencentARC/t2iadapter_openpose_sd14v1's config.json.
T2I_OPENPOSE = dict(in_channels=3, channels=[320, 640, 1280, 1280], num_res_blocks=2, downscale_factor=8,
                    adapter_type="full_adapter")


def _benchmarks():
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    import common
    import evaluation

    return common, evaluation


def write_sd15(folder: Path, common) -> "UNet2DConditionModel":  # noqa: F821
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig

    from spbench.models.tiny_tokenizer import build_tiny_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**common.SD15_UNET)
    vae = AutoencoderKL(**common.SD15_VAE)
    # The hub's text_encoder/config.json: 49,408 tokens, bos 0 / pad 1 / legacy eos 2 (pooling by argmax).
    text_encoder = CLIPTextModel(CLIPTextConfig(**common.SD15_TEXT, vocab_size=49408, bos_token_id=0, pad_token_id=1,
                                                eos_token_id=2))
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=1, num_attention_heads=16,
                              image_size=224, patch_size=14)
    safety = StableDiffusionSafetyChecker(CLIPConfig(text_config=CLIPTextConfig(**common.SD15_TEXT).to_dict(),
                                                     vision_config=vision.to_dict(), projection_dim=768))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=build_tiny_tokenizer(), unet=unet,
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER),  # from_config drops clip_sample, as loading does
        safety_checker=safety, feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    )
    pipe.save_pretrained(folder)
    write_hub_tokenizer(pipe.tokenizer, folder / "tokenizer")
    (folder / "model_index.json").write_text(json.dumps(SD15_MODEL_INDEX, indent=2))
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD15_SCHEDULER, indent=2))
    return unet


def write_hub_tokenizer(tokenizer, folder: Path) -> None:
    """The tokenizer as the SD1.5 repo holds it: vocab.json, merges.txt, special_tokens_map.json and
    tokenizer_config.json, no tokenizer.json (transformers 5's save_pretrained writes only that)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    (folder / "vocab.json").write_text(json.dumps(model["vocab"]))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": {"content": "<|startoftext|>", "lstrip": False, "normalized": True, "rstrip": False,
                             "single_word": False},
               "eos_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": True, "rstrip": False,
                             "single_word": False},
               "pad_token": "<|endoftext|>",
               "unk_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": True, "rstrip": False,
                             "single_word": False}}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {"add_prefix_space": False, **{k: {**v, "__type": "AddedToken"} if isinstance(v, dict) else v
                                             for k, v in special.items()},
              "do_lower_case": True, "errors": "replace", "model_max_length": 77,
              "name_or_path": "openai/clip-vit-large-patch14", "special_tokens_file": "./special_tokens_map.json",
              "tokenizer_class": "CLIPTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (folder / "tokenizer.json").unlink(missing_ok=True)


def write_random_inception(path: Path) -> None:
    """torch-fidelity's FID Inception with random weights, saved like the real file (building it
    needs its weights, so its loading is switched off for this one construction)."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf

    with pytest.MonkeyPatch.context() as m:
        m.setattr(tf, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(tf.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
        torch.manual_seed(0)
        module = tf.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(module.state_dict(), path)


@pytest.fixture(scope="module")
def hub_folders(tmp_path_factory):
    """Writes every model folder once; yields the ``--set``s and the checkpoint folders."""
    from diffusers import ControlNetModel, T2IAdapter

    common, evaluation = _benchmarks()
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # real-size arithmetic: use every core (conftest sets 1)
    root = tmp_path_factory.mktemp("hub")
    try:
        with torch.random.fork_rng(devices=[]):
            unet = write_sd15(root / "stable-diffusion-v1-5", common)
            torch.manual_seed(1)
            ControlNetModel.from_unet(unet).save_pretrained(root / "sd-controlnet-openpose")
            del unet
            torch.manual_seed(2)
            T2IAdapter(**T2I_OPENPOSE).save_pretrained(root / "t2iadapter_openpose_sd14v1")
            inception = root / "weights-inception-2015-12-05-6726825d.pth"
            write_random_inception(inception)
        sets = evaluation.save_real_metric_models(root / "metric", str(inception))
        sets["models.base"] = str(root / "stable-diffusion-v1-5")
        yield {"root": root, "sets": sets, "controlnet": root / "sd-controlnet-openpose",
               "t2i-adapter": root / "t2iadapter_openpose_sd14v1"}
    finally:
        torch.set_num_threads(threads)


def test_folders_have_the_hub_layout(hub_folders):
    base = Path(hub_folders["sets"]["models.base"])
    assert json.loads((base / "model_index.json").read_text()) == SD15_MODEL_INDEX
    expected = {"unet": "diffusion_pytorch_model.safetensors", "vae": "diffusion_pytorch_model.safetensors",
                "text_encoder": "model.safetensors", "safety_checker": "model.safetensors",
                "tokenizer": "vocab.json", "scheduler": "scheduler_config.json",
                "feature_extractor": "preprocessor_config.json"}
    for sub, name in expected.items():
        assert (base / sub / name).is_file(), (sub, sorted(p.name for p in (base / sub).iterdir()))
    assert {p.name for p in (base / "tokenizer").iterdir()} == {"vocab.json", "merges.txt", "special_tokens_map.json",
                                                                "tokenizer_config.json"}
    for key in ("controlnet", "t2i-adapter"):
        assert {"config.json", "diffusion_pytorch_model.safetensors"} <= {p.name for p in hub_folders[key].iterdir()}


def _run(hub_folders, method: str, metrics: list[str], limit: int, out: Path) -> dict:
    sets = hub_folders["sets"]
    wanted = {k: v for k, v in sets.items() if k != "models.inception" or "fid" in metrics}
    args = ["run", "--method", method, "--dataset", "sample", "--profile", "paper", "--limit", str(limit),
            "--samples", "1", "--steps", "1", "--out", str(out), "--checkpoint", str(hub_folders[method]),
            "--metrics", ",".join(metrics), "--set", "generation.canvas=64", "--set", f"paths.cache={out / 'cache'}"]
    for key, value in wanted.items():
        args += ["--set", f"{key}={value}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    (path,) = out.glob("*/result.json")
    return json.loads(path.read_text())


HEADLINE = {"pose": "AP", "clip": "score", "det": "AP75", "fid": "fid"}


def _check_record(record: dict, metrics: list[str], hub_folders) -> None:
    for metric in metrics:
        value = record["metrics"][metric][HEADLINE[metric]]
        # Random weights: pose and det AP are 0.0, but numbers (None would mean nothing was scored).
        assert isinstance(value, float) and math.isfinite(value), (metric, record["metrics"][metric])
    assert record["evaluation"]["pose"]["model"] == hub_folders["sets"]["models.pose"]
    for metric, key in (("clip", "models.clip"), ("det", "models.detector")):
        assert record["evaluation"][metric]["model"] == hub_folders["sets"][key]
    if "fid" in metrics:
        assert record["evaluation"]["fid"]["model"] == hub_folders["sets"]["models.inception"]
    assert record["config"]["models"]["base"] == hub_folders["sets"]["models.base"]


def test_controlnet_on_hub_layouts_with_every_metric(hub_folders, tmp_path):
    # Two samples: FID needs at least two images on each side (one gives None).
    metrics = ["pose", "clip", "det", "fid"]
    record = _run(hub_folders, "controlnet", metrics, 2, tmp_path)
    _check_record(record, metrics, hub_folders)


def test_t2i_adapter_on_hub_layouts(hub_folders, tmp_path):
    metrics = ["pose", "clip", "det"]
    record = _run(hub_folders, "t2i-adapter", metrics, 1, tmp_path)
    _check_record(record, metrics, hub_folders)
