"""Stable Diffusion 1.5 components: loaded from a hub id / folder, or built tiny in-process.

``tiny://sd15`` builds an SD1.5-shaped model with random weights: the same block types (three
cross-attention down blocks and a plain one, so ``down_blocks[2]`` has cross-attention like the
real UNet), an 8× VAE, a CLIP text encoder and an offline tokenizer. It proves the machinery in
seconds on a CPU; its images and scores mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from spbench.models.hub import load_pretrained
from spbench.registry import TINY_PREFIX, is_tiny_spec, tiny_builder

TINY_SD15 = TINY_PREFIX + "sd15"

# SD1.5's noise schedule (scheduler/scheduler_config.json of the real model).
SD15_SCHEDULE = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="epsilon", steps_offset=1, set_alpha_to_one=False, clip_sample=False,
)


@dataclass
class SDComponents:
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict
    source: str  # the id / folder / tiny:// name they came from

    def to(self, device, dtype) -> "SDComponents":
        for m in (self.unet, self.vae, self.text_encoder):
            place(m, device, dtype)
        return self


def place(module, device, dtype):
    """Move a model to device and dtype. (diffusers' own ``.to`` warns on every dtype cast in
    0.42 even when no module must stay in float32, so call torch's.)"""
    return torch.nn.Module.to(module, device=device, dtype=dtype)


def is_tiny(name: str | None) -> bool:
    return bool(name) and is_tiny_spec(str(name))


def load_sd_components(base: str) -> SDComponents:
    if not base:
        from spbench.errors import SpbenchError

        raise SpbenchError("models.base is not set (the Stable Diffusion 1.5 to generate or train with): add "
                           "`models: {base: ID_OR_FOLDER}` to the profile or pass --set models.base=ID_OR_FOLDER")
    if is_tiny(base):
        return tiny_builder(base, TINY_SD15, "unknown tiny model {spec!r} (models.base): use {known}")()
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    role = "Stable Diffusion base model"
    kw = dict(role=role, setting="models.base")
    tokenizer = load_pretrained(CLIPTokenizer, base, subfolder="tokenizer", **kw)
    text_encoder = load_pretrained(CLIPTextModel, base, subfolder="text_encoder", **kw)
    vae = load_pretrained(AutoencoderKL, base, subfolder="vae", **kw)
    unet = load_pretrained(UNet2DConditionModel, base, subfolder="unet", **kw)
    scheduler_config = dict(load_pretrained(DDPMScheduler, base, subfolder="scheduler", **kw).config)
    for m in (unet, vae, text_encoder):
        m.requires_grad_(False).eval()
    return SDComponents(unet, vae, text_encoder, tokenizer, scheduler_config, base)


def build_tiny_sd(seed: int = 0) -> SDComponents:
    """SD1.5-shaped components with random weights, built offline (about a second on a CPU)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from spbench.models.tiny_tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            block_out_channels=(32, 32, 64, 64),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=32,
        )
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4,
            block_out_channels=(32, 32, 64, 64),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1, norm_num_groups=32, sample_size=64,
        )
        torch.manual_seed(seed + 2)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, projection_dim=32,
            )
        )
    for m in (unet, vae, text_encoder):
        m.requires_grad_(False).eval()
    return SDComponents(unet, vae, text_encoder, tokenizer, dict(SD15_SCHEDULE), TINY_SD15)


def make_scheduler(name: str, scheduler_config: dict):
    """The sampler by name, configured with the base model's noise schedule."""
    from diffusers import DDIMScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler

    from spbench.errors import SpbenchError

    classes = {"unipc": UniPCMultistepScheduler, "ddim": DDIMScheduler, "euler": EulerDiscreteScheduler}
    if name not in classes:
        raise SpbenchError(f"unknown scheduler {name!r} (generation.scheduler): use one of {', '.join(classes)}")
    return classes[name].from_config(scheduler_config)
