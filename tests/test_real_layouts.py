"""The paper profile end to end on model folders laid out exactly as the hub's repos are.

Issue #13 item 7: with real-size random weights in the hub's own layouts every method and metric
ran; these tests keep it that way. The folders are written in a tmp dir:

- SD1.5 (``stable-diffusion-v1-5/stable-diffusion-v1-5``): ``model_index.json`` naming
  ``StableDiffusionPipeline`` with a ``PNDMScheduler`` and ``safety_checker`` /
  ``feature_extractor`` entries; subfolders unet/ vae/ text_encoder/ tokenizer/ scheduler/
  safety_checker/ feature_extractor/, written by the pipeline's own ``save_pretrained``. UNet,
  VAE and text encoder have the real configs (the text encoder with the hub's 49,408-row
  vocabulary and legacy ``eos_token_id=2``). The tokenizer is CLIP's real BPE (49,408 tokens,
  built from open_clip's ``bpe_simple_vocab_16e6.txt.gz``); the scheduler config is the hub's PNDM
  one. The safety checker, which spbench never loads, has CLIP-L's vision widths but one layer
  (its layout and class are the hub's; it only costs time to write).
- ControlNet OpenPose (``lllyasviel/sd-controlnet-openpose``): config.json +
  diffusion_pytorch_model.safetensors, ``ControlNetModel.from_unet`` of the real-size UNet.
- T2I-Adapter OpenPose (``TencentARC/t2iadapter_openpose_sd14v1``): the hub config (full
  adapter, channels 320/640/1280/1280, 2 res blocks, downscale 8).
- ViTPose++-H, CLIP ViT-L/14 and Grounding-DINO-T: ``spbench.metrics.real_size``'s
  ``write_metric_models`` (full size; Grounding-DINO with a small BERT vocabulary).

The folders are written by ``spbench.models.real_size`` and ``spbench.metrics.real_size``, the
builders ``benchmarks/`` uses for ``--size real``.
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
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from spbench.cli import app
from spbench.metrics.real_size import write_metric_models
from spbench.models.real_size import SD15_MODEL_INDEX, write_generation_models, write_random_inception

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub_folders(tmp_path_factory):
    """Writes every model folder once; yields the ``--set``s and the checkpoint folders."""
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # real-size arithmetic: use every core (conftest sets 1)
    root = tmp_path_factory.mktemp("hub")
    try:
        folders = write_generation_models(root)
        inception = write_random_inception(root / "weights-inception-2015-12-05-6726825d.pth")
        sets = write_metric_models(root / "metric", str(inception))
        sets["models.base"] = str(folders["base"])
        yield {"root": root, "sets": sets, "controlnet": folders["controlnet"], "t2i-adapter": folders["t2i-adapter"]}
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
