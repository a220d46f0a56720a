"""T2I-Adapter (OpenPose) on Stable Diffusion 1.5 — the paper's Table 1 baseline.

The adapter comes from ``--checkpoint`` (``method.checkpoint``) or the profile's
``models.t2i_adapter``: a diffusers ``T2IAdapter`` folder or hub id (e.g.
``TencentARC/t2iadapter_openpose_sd14v1``). With neither, it is randomly initialised (seed 0) with
the SD openpose adapter's architecture (full adapter, RGB input, 2 residual blocks per level,
pixel-unshuffle by the VAE's factor 8, one level per UNet down block with that block's width), as
training starts. The conditioning scale is ``adapter_conditioning_scale``.
"""

from __future__ import annotations

import warnings

from spbench.errors import SpbenchError
from spbench.methods import GenerationSettings, Method

INIT_SEED = 0


def adapter_for_unet(unet, vae_scale_factor: int = 8, seed: int = INIT_SEED):
    """A randomly initialised T2I-Adapter whose features fit ``unet``'s down blocks."""
    import torch
    from diffusers import T2IAdapter

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = T2IAdapter(
            in_channels=3, channels=list(unet.config.block_out_channels), num_res_blocks=2,
            downscale_factor=vae_scale_factor, adapter_type="full_adapter",
        )
    return adapter


def check_fits(adapter, unet, source: str) -> None:
    """The adapter adds one feature map per UNet down block: widths must match."""
    channels = list(adapter.config.get("channels", []))
    blocks = list(unet.config.block_out_channels)
    if channels and channels != blocks:
        raise SpbenchError(
            f"T2I-Adapter {source!r} has channels {channels} but the base UNet's blocks have {blocks}: "
            "use an adapter trained for this base model (--checkpoint or models.t2i_adapter)"
        )


def adapter_pipeline(sd, adapter, scheduler: str):
    from diffusers import StableDiffusionAdapterPipeline

    from spbench.models.stable_diffusion import make_scheduler

    pipe = StableDiffusionAdapterPipeline(
        vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet, adapter=adapter,
        scheduler=make_scheduler(scheduler, sd.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


class T2IAdapterMethod(Method):
    name = "t2i-adapter"
    condition = "openpose"
    description = "T2I-Adapter on SD1.5 driven by the RGB OpenPose rendering"

    def load(self) -> None:
        from diffusers import T2IAdapter

        from spbench.models.hub import load_pretrained
        from spbench.models.stable_diffusion import load_sd_components, place

        self.sd = load_sd_components(self.context.models["base"])
        if self.checkpoint:
            setting = "method.checkpoint" if self.context.options.get("checkpoint") else "models.t2i_adapter"
            adapter = load_pretrained(T2IAdapter, self.checkpoint, role="T2I-Adapter", setting=setting)
            check_fits(adapter, self.sd.unet, self.checkpoint)
        else:
            adapter = adapter_for_unet(self.sd.unet, self.vae_scale_factor)
        adapter.requires_grad_(False).eval()
        self.sd.to(self.context.device, self.context.dtype)
        place(adapter, self.context.device, self.context.dtype)
        self.pipe = adapter_pipeline(self.sd, adapter, self.context.config["generation"]["scheduler"])

    def generate(self, prompts, conditions, latents, settings: GenerationSettings):
        from spbench.generation.pipelines import run_pipeline

        with warnings.catch_warnings():
            # diffusers 0.42's adapter pipeline decodes through its own deprecated decode_latents.
            warnings.filterwarnings("ignore", message=".*decode_latents.*", category=FutureWarning)
            return run_pipeline(
                self.pipe, prompts, latents, settings,
                image=list(conditions), adapter_conditioning_scale=settings.conditioning_scale,
            )

    @property
    def checkpoint(self) -> str | None:
        """``--checkpoint`` wins over the profile's ``models.t2i_adapter``; None: random init."""
        return self.context.options.get("checkpoint") or self.context.models.get("t2i_adapter")

    def identity(self) -> dict:
        adapter = self.checkpoint or f"randomly initialised (seed {INIT_SEED}), SD openpose adapter architecture"
        return {"base": self.context.models["base"], "t2i_adapter": adapter}
