"""FLUX.1 components and FLUX ControlNets: loaded from a hub id or folder, or built tiny in-process.

``tiny://flux`` is a FLUX.1-dev-shaped base with random weights, built as diffusers' own FLUX
ControlNet tests build theirs (tests/pipelines/controlnet_flux/test_controlnet_flux.py): a
``FluxTransformer2DModel`` with the distilled-guidance embedding of FLUX.1-dev, reading
16-channel latents packed 2x2 into 64-wide tokens, a 16-channel 8x VAE without quant
convolutions, a CLIP-L text encoder (pooled) and a T5 encoder, with offline tokenizers.
``tiny://controlnet-flux-union`` is a ``FluxControlNetModel`` with a control-mode embedding of
10 modes as the InstantX / Shakker-Labs Union ControlNets have (pose is mode 4), its
zero-initialised layers given small random values. Their images mean nothing.

FLUX's pipeline takes ``latents`` already packed: ``(batch, (H/16)*(W/16), 64)``, each token the
16 channels of a 2x2 latent patch. :func:`pack_latents` packs noise drawn per request in the
unpacked shape ``(16, H/8, W/8)``, as the pipeline packs the noise it draws itself.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spbench.models.hub import load_frozen_model, load_pipeline_parts
from spbench.registry import TINY_PREFIX, is_tiny_spec, tiny_builder

if TYPE_CHECKING:  # torch is imported where used: listing methods must not import it
    import torch

TINY_FLUX = TINY_PREFIX + "flux"
TINY_CONTROLNET_FLUX_UNION = TINY_PREFIX + "controlnet-flux-union"

# black-forest-labs/FLUX.1-dev scheduler/scheduler_config.json (resolution-dependent shift).
FLUX_SCHEDULE = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                     base_image_seq_len=256, max_image_seq_len=4096)
# Its VAE's config.json (16 latent channels, no quant convolutions).
FLUX_VAE = dict(latent_channels=16, shift_factor=0.1159, scaling_factor=0.3611, use_quant_conv=False,
                use_post_quant_conv=False)
FLUX_LATENT_CHANNELS = 16
UNION_MODES = 10  # config.json num_mode of the Union ControlNets


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """``[B, C, h, w]`` -> ``[B, (h/2)*(w/2), 4C]``: token (i, j) holds the C channels of latent
    pixels (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1), channel-major, row-major over patches
    (the layout FluxPipeline gives the noise it draws)."""
    b, c, h, w = latents.shape
    if h % 2 or w % 2:
        raise ValueError(f"FLUX latents must have even height and width, got {h}x{w}")
    patches = latents.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // 2) * (w // 2), c * 4)


@dataclass
class FluxComponents:
    transformer: Any
    vae: Any
    text_encoder: Any    # CLIP-L (pooled)
    text_encoder_2: Any  # T5
    tokenizer: Any
    tokenizer_2: Any
    scheduler_config: dict
    source: str

    def modules(self) -> tuple:
        return (self.transformer, self.vae, self.text_encoder, self.text_encoder_2)


def load_flux_components(base: str, setting: str = "models.flux_base") -> FluxComponents:
    if is_tiny_spec(base):
        return tiny_builder(base, TINY_FLUX, "unknown tiny model {spec!r} (" + setting + "): use {known}")()
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

    parts = {"transformer": (FluxTransformer2DModel, "transformer"), "vae": (AutoencoderKL, "vae"),
             "text_encoder": (CLIPTextModel, "text_encoder"), "text_encoder_2": (T5EncoderModel, "text_encoder_2"),
             "tokenizer": (CLIPTokenizer, "tokenizer"), "tokenizer_2": (T5TokenizerFast, "tokenizer_2"),
             "scheduler_config": (FlowMatchEulerDiscreteScheduler, "scheduler")}
    return FluxComponents(**load_pipeline_parts(base, parts, "FLUX base model", setting), source=base)


def load_flux_controlnet(spec: str, setting: str):
    """A diffusers ``FluxControlNetModel`` (hub id or folder), or ``tiny://controlnet-flux-union``."""
    with _own_deprecation_quiet():
        return load_frozen_model(spec, setting, "FLUX ControlNet", "InstantX/FLUX.1-dev-Controlnet-Union",
                                 TINY_CONTROLNET_FLUX_UNION, "diffusers:FluxControlNetModel")


@contextlib.contextmanager
def _own_deprecation_quiet():
    """diffusers 0.42's FluxControlNetModel builds its position embedding through a name diffusers
    itself deprecates, warning on every construction: the warning is about diffusers' own code."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*`FluxPosEmbed` from `diffusers.models.embeddings` is deprecated",
                                category=FutureWarning)
        yield


# The transformer's shape, shared by the tiny base and its ControlNet: 2 heads of 16 (the rotary
# axes 4 + 4 + 8 split a head, as 16 + 56 + 56 = 128 in FLUX.1), 64 = 16 channels x 2x2 in,
# CLIP's width as the pooled projection and T5's as the joint attention width.
_MMDIT = dict(patch_size=1, in_channels=4 * FLUX_LATENT_CHANNELS, attention_head_dim=16, num_attention_heads=2,
              joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(4, 4, 8))


def build_tiny_flux(seed: int = 0) -> FluxComponents:
    """FLUX.1-dev-shaped components with random weights, built offline."""
    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    from spbench.models.tiny_text import build_tiny_t5_tokenizer, tiny_clip_text_encoder, tiny_t5_encoder
    from spbench.models.tiny_tokenizer import build_tiny_tokenizer

    tokenizer, tokenizer_2 = build_tiny_tokenizer(), build_tiny_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(num_layers=1, num_single_layers=1, **_MMDIT)
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, block_out_channels=(32, 32, 64, 64),
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1, norm_num_groups=32, sample_size=64, **FLUX_VAE,
        )
    return FluxComponents(
        transformer=transformer.requires_grad_(False).eval(),
        vae=vae.requires_grad_(False).eval(),
        text_encoder=tiny_clip_text_encoder(tokenizer, seed + 2, hidden=_MMDIT["pooled_projection_dim"]),
        text_encoder_2=tiny_t5_encoder(tokenizer_2, seed + 3, d_model=_MMDIT["joint_attention_dim"]),
        tokenizer=tokenizer, tokenizer_2=tokenizer_2,
        scheduler_config=dict(FLUX_SCHEDULE), source=TINY_FLUX,
    )


def build_tiny_controlnet_flux_union(seed: int = 0):
    """A Union FLUX ControlNet of the tiny transformer's shape: the control image goes through the
    VAE (no hint block, as InstantX's), a mode embedding of 10 modes, small random values where
    diffusers puts zeros."""
    import torch
    from diffusers import FluxControlNetModel

    from spbench.models.tiny_text import wake_zero_initialised

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 30)
        with _own_deprecation_quiet():
            controlnet = FluxControlNetModel(num_layers=1, num_single_layers=1, num_mode=UNION_MODES, **_MMDIT)
    prefixes = ("controlnet_blocks", "controlnet_single_blocks", "controlnet_x_embedder")
    return wake_zero_initialised(controlnet, seed + 31, prefixes).requires_grad_(False).eval()
