"""Diffusers pipelines assembled from loaded components, and the one way spbench calls them."""

from __future__ import annotations

import torch
from PIL import Image

from spbench.models.stable_diffusion import SDComponents, make_scheduler
from spbench.run.requests import GenerationSettings


def build_pipeline(pipeline_cls, sd: SDComponents, scheduler: str, **models):
    """A Stable Diffusion pipeline of class ``pipeline_cls`` around ``sd``'s components and the
    method's ``models`` (``controlnet=``, ``adapter=``), sampling with ``scheduler``, without a
    safety checker: how every method, and training's validation, builds its pipeline."""
    pipe = pipeline_cls(
        vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet,
        scheduler=make_scheduler(scheduler, sd.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False, **models,
    )
    # The engine shows one progress bar for the whole run instead of one per batch.
    pipe.set_progress_bar_config(disable=True)
    return pipe


def controlnet_pipeline(sd: SDComponents, controlnet, scheduler: str):
    from diffusers import StableDiffusionControlNetPipeline

    return build_pipeline(StableDiffusionControlNetPipeline, sd, scheduler, controlnet=controlnet)


# The modules a pipeline runs at every denoising step (a T2I-Adapter runs once per call); SD3 and
# FLUX pipelines denoise with a "transformer".
STEP_MODULES = ("unet", "transformer", "controlnet")


def compile_step_modules(method) -> list[str]:
    """``torch.compile`` in place the per-step modules of ``method.pipe`` (generation.compile);
    returns their names. Compilation happens at the first call, and again once when the last
    batch is smaller; measured in BENCHMARKS.md."""
    from spbench.errors import SpbenchError

    pipe = getattr(method, "pipe", None)
    modules = {name: getattr(pipe, name, None) for name in STEP_MODULES}
    modules = {name: m for name, m in modules.items() if isinstance(m, torch.nn.Module)}
    if not modules:
        raise SpbenchError(f"generation.compile=true: method {method.name!r} has no diffusers pipeline (.pipe) with a "
                           "UNet, transformer or ControlNet to compile; run it with generation.compile=false")
    for module in modules.values():
        module.compile()
    return list(modules)


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
