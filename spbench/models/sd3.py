"""Stable Diffusion 3 components and SD3 ControlNets: loaded from a hub id or folder, or built
tiny in-process.

``tiny://sd3`` is an SD3-shaped base with random weights, built as diffusers' own SD3 ControlNet
tests build theirs (tests/pipelines/controlnet_sd3/test_controlnet_sd3.py): an MMDiT
(``SD3Transformer2DModel``) on 16-channel latents in 2x2 patches, a 16-channel 8x VAE without
quant convolutions, CLIP-L and CLIP-G text encoders with projection and a T5 encoder whose width
holds both CLIPs' (the pipeline pads the CLIP embeddings to it), with offline tokenizers.
``tiny://controlnet-sd3`` is an ``SD3ControlNetModel`` like InstantX's (the control image goes
through the VAE; pooled projections are zeros), its zero-initialised layers given small random
values. Their images mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spbench.errors import SpbenchError
from spbench.models.hub import load_frozen_model, load_pipeline_parts
from spbench.registry import TINY_PREFIX, is_tiny_spec, tiny_builder

TINY_SD3 = TINY_PREFIX + "sd3"
TINY_CONTROLNET_SD3 = TINY_PREFIX + "controlnet-sd3"

# stabilityai/stable-diffusion-3-medium-diffusers scheduler/scheduler_config.json.
SD3_SCHEDULE = dict(num_train_timesteps=1000, shift=3.0)
# Its VAE's config.json (16 latent channels, no quant convolutions).
SD3_VAE = dict(latent_channels=16, shift_factor=0.0609, scaling_factor=1.5305, use_quant_conv=False,
               use_post_quant_conv=False)
SD3_PATCH = 2  # the transformer's patch size: latents must be even, images multiples of 16

# Flow-matching samplers by name (generation.scheduler).
FLOW_SCHEDULERS = ("flow-euler",)


def flow_scheduler(name: str, scheduler_config: dict, model: str):
    """The flow-matching sampler of SD3 / FLUX by name, on the base model's schedule."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if name != "flow-euler":
        raise SpbenchError(f"generation.scheduler={name!r} cannot sample {model} (a flow-matching model): use "
                           "flow-euler, the FlowMatchEulerDiscreteScheduler its pipeline ships with")
    return FlowMatchEulerDiscreteScheduler.from_config(scheduler_config)


@dataclass
class SD3Components:
    transformer: Any
    vae: Any
    text_encoder: Any    # CLIP-L with projection
    text_encoder_2: Any  # CLIP-G with projection
    text_encoder_3: Any  # T5
    tokenizer: Any
    tokenizer_2: Any
    tokenizer_3: Any
    scheduler_config: dict
    source: str

    def modules(self) -> tuple:
        return (self.transformer, self.vae, self.text_encoder, self.text_encoder_2, self.text_encoder_3)


def load_sd3_components(base: str, setting: str = "models.sd3_base") -> SD3Components:
    if is_tiny_spec(base):
        return tiny_builder(base, TINY_SD3, "unknown tiny model {spec!r} (" + setting + "): use {known}")()
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

    parts = {"transformer": (SD3Transformer2DModel, "transformer"), "vae": (AutoencoderKL, "vae"),
             "text_encoder": (CLIPTextModelWithProjection, "text_encoder"),
             "text_encoder_2": (CLIPTextModelWithProjection, "text_encoder_2"),
             "text_encoder_3": (T5EncoderModel, "text_encoder_3"), "tokenizer": (CLIPTokenizer, "tokenizer"),
             "tokenizer_2": (CLIPTokenizer, "tokenizer_2"), "tokenizer_3": (T5TokenizerFast, "tokenizer_3"),
             "scheduler_config": (FlowMatchEulerDiscreteScheduler, "scheduler")}
    return SD3Components(**load_pipeline_parts(base, parts, "SD3 base model", setting), source=base)


def load_sd3_controlnet(spec: str, setting: str):
    """A diffusers ``SD3ControlNetModel`` (hub id or folder), or ``tiny://controlnet-sd3``."""
    return load_frozen_model(spec, setting, "SD3 ControlNet", "InstantX/SD3-Controlnet-Pose", TINY_CONTROLNET_SD3,
                             "diffusers:SD3ControlNetModel")


# The MMDiT's shape, shared by the tiny transformer and its ControlNet: 4 heads of 8 = 32 wide
# (caption_projection_dim is the inner width, as 1536 = 24 x 64 in SD3 medium).
_MMDIT = dict(sample_size=8, patch_size=SD3_PATCH, in_channels=16, out_channels=16, attention_head_dim=8,
              num_attention_heads=4, joint_attention_dim=64, caption_projection_dim=32, pooled_projection_dim=64,
              pos_embed_max_size=32)


def build_tiny_sd3(seed: int = 0) -> SD3Components:
    """SD3-shaped components with random weights, built offline."""
    import torch
    from diffusers import AutoencoderKL, SD3Transformer2DModel

    from spbench.models.tiny_text import build_tiny_t5_tokenizer, tiny_clip_text_encoder, tiny_t5_encoder
    from spbench.models.tiny_tokenizer import build_tiny_tokenizer

    tokenizer, tokenizer_2, tokenizer_3 = build_tiny_tokenizer(), build_tiny_tokenizer(), build_tiny_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(num_layers=2, **_MMDIT)
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, block_out_channels=(32, 32, 64, 64),
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1, norm_num_groups=32, sample_size=64, **SD3_VAE,
        )
    sd = SD3Components(
        transformer=transformer.requires_grad_(False).eval(),
        vae=vae.requires_grad_(False).eval(),
        # Pooled CLIP-L + CLIP-G (32 + 32) is the transformer's pooled_projection_dim (768 + 1280 = 2048 in SD3).
        text_encoder=tiny_clip_text_encoder(tokenizer, seed + 2, projection=True),
        text_encoder_2=tiny_clip_text_encoder(tokenizer_2, seed + 3, projection=True),
        # T5's width is the joint attention width; the two CLIPs' hidden states (32 + 32) are padded to it.
        text_encoder_3=tiny_t5_encoder(tokenizer_3, seed + 4, d_model=_MMDIT["joint_attention_dim"]),
        tokenizer=tokenizer, tokenizer_2=tokenizer_2, tokenizer_3=tokenizer_3,
        scheduler_config=dict(SD3_SCHEDULE), source=TINY_SD3,
    )
    return sd


def build_tiny_controlnet_sd3(seed: int = 0):
    """An SD3 ControlNet of the tiny MMDiT's shape (diffusers' defaults: VAE-encoded control image,
    zero pooled projections, as InstantX's), with small random values where diffusers puts zeros."""
    import torch
    from diffusers import SD3ControlNetModel

    from spbench.models.tiny_text import wake_zero_initialised

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 20)
        controlnet = SD3ControlNetModel(num_layers=1, **_MMDIT)
    return wake_zero_initialised(controlnet, seed + 21, ("controlnet_blocks", "pos_embed_input")).requires_grad_(False).eval()
