import time

import pytest
import torch

from spbench.errors import SpbenchError
from spbench.models.stable_diffusion import build_tiny_sd, load_sd_components
from spbench.models.tiny_tokenizer import build_tiny_tokenizer


def test_tiny_tokenizer_makes_whole_words_and_falls_back_to_bytes():
    tok = build_tiny_tokenizer()
    pieces = tok.convert_ids_to_tokens(tok("A photo of zebra, qx").input_ids)
    assert pieces == ["<|startoftext|>", "a</w>", "photo</w>", "of</w>", "zebra</w>", ",</w>", "q", "x</w>", "<|endoftext|>"]
    assert tok.model_max_length == 77


def test_tiny_sd_is_sd15_shaped_and_deterministic():
    start = time.perf_counter()
    a, b = build_tiny_sd(), build_tiny_sd()
    assert time.perf_counter() - start < 30
    # down_blocks[2] has cross-attention, as in SD1.5 (the KCL loss reads it).
    assert hasattr(a.unet.down_blocks[2], "attentions")
    assert [type(blk).__name__ for blk in a.unet.down_blocks] == ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
    assert len(a.vae.config.block_out_channels) == 4  # 8x VAE like SD
    for pa, pb in zip(a.unet.parameters(), b.unet.parameters()):
        assert torch.equal(pa, pb)


def test_folder_goes_through_the_real_from_pretrained_path(tmp_path):
    from diffusers import StableDiffusionPipeline

    tiny = build_tiny_sd()
    from spbench.models.stable_diffusion import make_scheduler

    pipe = StableDiffusionPipeline(
        vae=tiny.vae, text_encoder=tiny.text_encoder, tokenizer=tiny.tokenizer, unet=tiny.unet,
        scheduler=make_scheduler("ddim", tiny.scheduler_config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(tmp_path / "sd")
    loaded = load_sd_components(str(tmp_path / "sd"))
    assert loaded.source == str(tmp_path / "sd")
    for pa, pb in zip(tiny.unet.parameters(), loaded.unet.parameters()):
        assert torch.equal(pa, pb)
    assert loaded.tokenizer("a photo of dog").input_ids == tiny.tokenizer("a photo of dog").input_ids
    assert loaded.scheduler_config["beta_schedule"] == "scaled_linear"


def test_missing_hub_id_offline_names_the_id_and_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SpbenchError) as e:
        load_sd_components("nobody/no-such-model-xyz")
    msg = str(e.value)
    assert "nobody/no-such-model-xyz" in msg and "--set models.base=" in msg and "\n" not in msg
