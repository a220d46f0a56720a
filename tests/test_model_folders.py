"""Model folders as users download them: the fp16-only variant loads, a missing local folder is
named as a folder (no `hf download /local/path`), and float16 on a CPU warns towards bfloat16."""

from __future__ import annotations

import warnings

import pytest
import torch

from spbench.errors import SpbenchError
from spbench.generation.engine import resolve_dtype
from spbench.models.hub import half_precision_variant
from spbench.models.stable_diffusion import build_tiny_sd, load_sd_components


@pytest.fixture(scope="module")
def fp16_only_sd(tmp_path_factory):
    """A tiny SD1.5 in the hub's layout holding only the ``*.fp16.safetensors`` weights, as
    `hf download ID --include "*.fp16.*" …` leaves it."""
    from diffusers import DDPMScheduler

    sd = build_tiny_sd()
    root = tmp_path_factory.mktemp("sd15-fp16")
    for name in ("unet", "vae", "text_encoder"):
        getattr(sd, name).save_pretrained(root / name, variant="fp16")
    sd.tokenizer.save_pretrained(root / "tokenizer")
    DDPMScheduler.from_config(sd.scheduler_config).save_pretrained(root / "scheduler")
    return root, sd


def test_a_folder_with_only_the_fp16_variant_loads(fp16_only_sd):
    root, sd = fp16_only_sd
    assert sorted(p.name for p in (root / "unet").iterdir() if "safetensors" in p.name) == [
        "diffusion_pytorch_model.fp16.safetensors"]
    assert half_precision_variant(str(root), "unet") == "fp16"
    assert half_precision_variant(str(root), "tokenizer") is None
    loaded = load_sd_components(str(root))
    for name in ("unet", "vae", "text_encoder"):
        want, got = getattr(sd, name).state_dict(), getattr(loaded, name).state_dict()
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k].to(want[k].dtype)) for k in want), name


def test_a_missing_local_folder_is_named_as_a_folder(tmp_path):
    missing = str(tmp_path / "no-such-sd15")
    with pytest.raises(SpbenchError) as e:
        load_sd_components(missing)
    message = str(e.value)
    assert "does not exist" in message and missing in message and "hf download" not in message
    assert len(message.splitlines()) == 1


def test_float16_on_a_cpu_warns_towards_bfloat16():
    with pytest.warns(UserWarning, match="bfloat16"):
        assert resolve_dtype("float16", torch.device("cpu")) == torch.float16
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for the fast dtypes
        assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
        assert resolve_dtype("auto", torch.device("cpu")) == torch.float32



@pytest.fixture(scope="module")
def two_variant_sd(tmp_path_factory):
    """A tiny SD1.5 folder holding both the plain and the fp16 variant, with different weights,
    as a full hub download does."""
    from diffusers import DDPMScheduler

    plain, other = build_tiny_sd(seed=0), build_tiny_sd(seed=1)
    root = tmp_path_factory.mktemp("sd15-both")
    for name in ("unet", "vae", "text_encoder"):
        getattr(plain, name).save_pretrained(root / name)
        getattr(other, name).save_pretrained(root / name, variant="fp16")
    plain.tokenizer.save_pretrained(root / "tokenizer")
    DDPMScheduler.from_config(plain.scheduler_config).save_pretrained(root / "scheduler")
    return root, plain, other


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k].to(sa[k].dtype)) for k in sa)


def test_variant_and_dtype_per_model_role(two_variant_sd):
    from spbench.models.hub import load_options

    root, plain, other = two_variant_sd
    assert _same(load_sd_components(str(root)).unet, plain.unet)  # no setting: the plain files
    with load_options({"variants": {"base": "fp16"}, "dtypes": {"base": "bfloat16"}}):
        chosen = load_sd_components(str(root))
    assert _same(chosen.unet, other.unet) and _same(chosen.text_encoder, other.text_encoder)
    assert chosen.unet.dtype == torch.bfloat16 and chosen.vae.dtype == torch.bfloat16
    with load_options({"variants": {"clip": "fp16"}}):  # another role's setting leaves base alone
        assert _same(load_sd_components(str(root)).unet, plain.unet)


def test_variant_and_dtype_settings_through_the_cli(two_variant_sd, tmp_path):
    from typer.testing import CliRunner

    from spbench.cli import app

    root, _, _ = two_variant_sd
    args = ["generate", "--method", "controlnet", "--dataset", "sample", "--profile", "tiny", "--steps", "1",
            "--limit", "1", "--images-per-prompt", "1", "--out", str(tmp_path), "--set", f"models.base={root}",
            "--set", "models.variants.base=fp16", "--set", "models.dtypes.base=bfloat16"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(app, [*args[:-2], "--set", "models.dtypes.base=float8"])
    assert isinstance(bad.exception, SpbenchError) and "models.dtypes.base" in str(bad.exception)
