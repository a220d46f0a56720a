"""Stable Diffusion XL components and SDXL ControlNets: loaded from a hub id or folder, or built
tiny in-process.

``tiny://sdxl`` is an SDXL-shaped base with random weights, built as diffusers' own SDXL
ControlNet tests build theirs (tests/pipelines/controlnet/test_controlnet_sdxl.py): a UNet with
SDXL's block types (a plain down block, then cross-attention ones), linear attention projections
and the "text_time" added condition (pooled CLIP-G text + the six size/crop numbers), an 8x VAE,
CLIP-L and CLIP-G text encoders (penultimate hidden states, concatenated) and offline
tokenizers. ``tiny://controlnet-sdxl`` is a ControlNet made from that UNet, its zero-initialised
outputs given small random values so that the pose reaches the image. Their images mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spbench.errors import SpbenchError
from spbench.models.hub import load_frozen_model, load_pipeline_parts, load_pretrained
from spbench.registry import TINY_PREFIX, is_tiny_spec, tiny_builder

TINY_SDXL = TINY_PREFIX + "sdxl"
TINY_CONTROLNET_SDXL = TINY_PREFIX + "controlnet-sdxl"

# stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json (EulerDiscreteScheduler);
# diffusers' SDXL tests build theirs with the same values.
SDXL_SCHEDULE = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="epsilon", steps_offset=1, timestep_spacing="leading", interpolation_type="linear",
    use_karras_sigmas=False, sample_max_value=1.0, set_alpha_to_one=False, clip_sample=False,
)
SDXL_VAE_SCALING = 0.13025  # the SDXL VAE's config.json scaling_factor


@dataclass
class SDXLComponents:
    unet: Any
    vae: Any
    text_encoder: Any    # CLIP-L (CLIPTextModel)
    text_encoder_2: Any  # CLIP-G (CLIPTextModelWithProjection)
    tokenizer: Any
    tokenizer_2: Any
    scheduler_config: dict
    source: str

    def modules(self) -> tuple:
        return (self.unet, self.vae, self.text_encoder, self.text_encoder_2)


def sdxl_scheduler(name: str, scheduler_config: dict):
    """The sampler by name (generation.scheduler), on the base model's noise schedule."""
    from diffusers import (DDIMScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                           UniPCMultistepScheduler)

    classes = {"euler": EulerDiscreteScheduler, "euler-ancestral": EulerAncestralDiscreteScheduler,
               "unipc": UniPCMultistepScheduler, "ddim": DDIMScheduler}
    if name not in classes:
        raise SpbenchError(f"generation.scheduler={name!r} cannot sample SDXL here: use one of {', '.join(classes)} "
                           "(--set generation.scheduler=NAME)")
    return classes[name].from_config(scheduler_config)


SDXL_SCHEDULERS = ("euler", "euler-ancestral", "unipc", "ddim")


def load_sdxl_components(base: str, vae: str | None = None, setting: str = "models.sdxl_base",
                         vae_setting: str = "models.sdxl_vae") -> SDXLComponents:
    """SDXL's UNet, VAE (or the one of ``vae``: a folder or id holding only a VAE, e.g.
    madebyollin/sdxl-vae-fp16-fix), both text encoders and tokenizers, and its schedule."""
    if is_tiny_spec(base):
        sd = tiny_builder(base, TINY_SDXL, "unknown tiny model {spec!r} (" + setting + "): use {known}")()
        if vae:
            raise SpbenchError(f"{vae_setting}={vae}: the tiny SDXL keeps its own VAE; leave {vae_setting} unset")
        return sd
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    parts = {"unet": (UNet2DConditionModel, "unet"), "text_encoder": (CLIPTextModel, "text_encoder"),
             "text_encoder_2": (CLIPTextModelWithProjection, "text_encoder_2"), "tokenizer": (CLIPTokenizer, "tokenizer"),
             "tokenizer_2": (CLIPTokenizer, "tokenizer_2"), "scheduler_config": (EulerDiscreteScheduler, "scheduler")}
    if not vae:
        parts["vae"] = (AutoencoderKL, "vae")
    loaded = load_pipeline_parts(base, parts, "SDXL base model", setting)
    if vae:  # a folder or id holding only a VAE
        loaded["vae"] = load_pretrained(AutoencoderKL, vae, role="SDXL VAE", setting=vae_setting).requires_grad_(False).eval()
    return SDXLComponents(**loaded, source=base)


def load_sdxl_controlnet(spec: str, setting: str):
    """A diffusers SDXL ``ControlNetModel`` (hub id or folder), or ``tiny://controlnet-sdxl``."""
    return load_frozen_model(spec, setting, "SDXL ControlNet", "xinsir/controlnet-openpose-sdxl-1.0", TINY_CONTROLNET_SDXL,
                             "diffusers:ControlNetModel")


def _tiny_unet(seed: int):
    import torch
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            block_out_channels=(32, 32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=8,
            use_linear_projection=True,
            transformer_layers_per_block=1,
            cross_attention_dim=64,  # CLIP-L width + CLIP-G width (32 + 32), as 768 + 1280 in SDXL
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 32,  # six size/crop numbers + pooled CLIP-G
            norm_num_groups=32,
        )
    return unet.requires_grad_(False).eval()


def build_tiny_sdxl(seed: int = 0) -> SDXLComponents:
    """SDXL-shaped components with random weights, built offline (well under a second)."""
    import torch
    from diffusers import AutoencoderKL

    from spbench.models.tiny_text import tiny_clip_text_encoder
    from spbench.models.tiny_tokenizer import build_tiny_tokenizer

    tokenizer, tokenizer_2 = build_tiny_tokenizer(), build_tiny_tokenizer()
    unet = _tiny_unet(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 64, 64),
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1, norm_num_groups=32, sample_size=64, scaling_factor=SDXL_VAE_SCALING,
        )
    text_encoder = tiny_clip_text_encoder(tokenizer, seed + 2)
    text_encoder_2 = tiny_clip_text_encoder(tokenizer_2, seed + 3, projection=True)
    sd = SDXLComponents(unet, vae.requires_grad_(False).eval(), text_encoder, text_encoder_2, tokenizer, tokenizer_2,
                        dict(SDXL_SCHEDULE), TINY_SDXL)
    return sd


def build_tiny_controlnet_sdxl(seed: int = 0):
    """An SDXL ControlNet made from the tiny SDXL UNet (as ``ControlNetModel.from_unet`` starts
    training), with small random values where diffusers puts zeros."""
    import torch
    from diffusers import ControlNetModel

    from spbench.models.tiny_text import wake_zero_initialised

    unet = _tiny_unet(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 9)  # from_unet draws the layers the UNet has no copy of (the hint encoder)
        controlnet = ControlNetModel.from_unet(unet)
    woken = wake_zero_initialised(controlnet, seed + 10, ("controlnet_down_blocks", "controlnet_mid_block",
                                                         "controlnet_cond_embedding.conv_out"))
    return woken.requires_grad_(False).eval()
