"""Diffusers pipelines assembled from loaded components, and the one way spbench calls them."""

from __future__ import annotations

import torch
from PIL import Image

from spbench.methods.base import GenerationSettings
from spbench.models.stable_diffusion import SDComponents, make_scheduler


def controlnet_pipeline(sd: SDComponents, controlnet, scheduler: str):
    from diffusers import StableDiffusionControlNetPipeline

    pipe = StableDiffusionControlNetPipeline(
        vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet,
        controlnet=controlnet, scheduler=make_scheduler(scheduler, sd.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    # The engine shows one progress bar for the whole run instead of one per batch.
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.inference_mode()
def run_pipeline(pipe, prompts: list[str], latents: torch.Tensor, settings: GenerationSettings, **inputs) -> list[Image.Image]:
    """Call ``pipe`` with the protocol's settings; ``inputs`` carries the method's condition
    (``image=`` for ControlNet and T2I-Adapter) and its scale."""
    negative = [settings.negative_prompt] * len(prompts) if settings.negative_prompt else None
    out = pipe(
        prompt=prompts,
        negative_prompt=negative,
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        latents=latents,
        height=settings.height,
        width=settings.width,
        output_type="pil",
        **inputs,
    )
    return list(out.images)
