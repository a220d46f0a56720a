"""T2I-Adapter (OpenPose) on Stable Diffusion 1.5 — the paper's Table 1 baseline.

The adapter comes from ``--checkpoint`` (``method.checkpoint``) or the profile's
``models.t2i_adapter``: a diffusers ``T2IAdapter`` folder or hub id (e.g.
``TencentARC/t2iadapter_openpose_sd14v1``). With neither, it is randomly initialised (seed 0) with
the SD openpose adapter's architecture (full adapter, RGB input, 2 residual blocks per level,
pixel-unshuffle by the VAE's factor 8, one level per UNet down block with that block's width), as
training starts. The conditioning scale is ``adapter_conditioning_scale``.

The pose condition is ``method.options.condition`` (``openpose``, ``openpose18``,
``openpose18-blend``); unset, the format a known public checkpoint was trained on
(``TencentARC/t2iadapter_openpose_sd14v1``: openpose18-blend, the ControlNet 1.0 drawing its
repository's annotator makes), else ``openpose`` (:mod:`spbench.conditions.openpose18`).
"""

from __future__ import annotations

import warnings

from spbench.conditions.openpose18 import pose_condition
from spbench.errors import SpbenchError
from spbench.methods import Method
from spbench.run.requests import GenerationSettings, MethodContext

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


class T2IAdapterMethod(Method):
    name = "t2i-adapter"
    condition = "openpose"
    description = "T2I-Adapter on SD1.5 driven by the RGB OpenPose rendering (public checkpoints: the OpenPose-18 they were trained on)"
    checkpoint_model = "t2i_adapter"  # --checkpoint stands in for the profile's models.t2i_adapter

    def __init__(self, context: MethodContext):
        from spbench.run.resolve import run_schema

        super().__init__(context)
        # this run's pose format: the option, else what the checkpoint was trained on
        self.condition = pose_condition(context.method_options.get("condition"), self.checkpoint, run_schema(context.config))

    def load(self) -> None:
        from diffusers import T2IAdapter

        from spbench.models.hub import load_pretrained
        from spbench.models.stable_diffusion import load_sd_components, place

        self.sd = load_sd_components(self.context.models["base"])
        if self.checkpoint:
            setting = "method.checkpoint" if self.context.checkpoint else f"models.{self.checkpoint_model}"
            adapter = load_pretrained(T2IAdapter, self.checkpoint, role="T2I-Adapter", setting=setting)
            check_fits(adapter, self.sd.unet, self.checkpoint)
        else:
            adapter = adapter_for_unet(self.sd.unet, self.vae_scale_factor)
        adapter.requires_grad_(False).eval()
        self.sd.to(self.context.device, self.context.dtype)
        place(adapter, self.context.device, self.context.dtype)
        self.pipe = self.build_pipeline(self.sd, adapter)

    def build_pipeline(self, sd, model):
        from diffusers import StableDiffusionAdapterPipeline

        from spbench.models.pipelines import build_pipeline

        return build_pipeline(StableDiffusionAdapterPipeline, sd, self.context.config["generation"]["scheduler"], adapter=model)

    def pipeline_inputs(self, conditions, scale: float) -> dict:
        return {"image": list(conditions), "adapter_conditioning_scale": scale}

    def trainable_model(self, sd, seed: int):
        """The SD openpose adapter architecture, randomly initialised from ``seed``; its features are
        added inside the UNet's down blocks. Saved as ``t2i_adapter/``."""
        from spbench.models.trainable import Trainable

        return Trainable(adapter_for_unet(sd.unet, self.vae_scale_factor, seed=seed), "adapter", "t2i_adapter")

    def generate(self, prompts, conditions, latents, settings: GenerationSettings):
        from spbench.models.pipelines import run_pipeline

        with warnings.catch_warnings():
            # diffusers 0.42's adapter pipeline decodes through its own deprecated decode_latents.
            warnings.filterwarnings("ignore", message=".*decode_latents.*", category=FutureWarning)
            return run_pipeline(self.pipe, prompts, latents, settings, **self.pipeline_inputs(conditions, settings.conditioning_scale))

    @property
    def checkpoint(self) -> str | None:
        """``--checkpoint`` wins over the profile's ``models.t2i_adapter``; None: random init."""
        return self.context.checkpoint or self.context.models.get(self.checkpoint_model)

    def identity(self) -> dict:
        adapter = self.checkpoint or f"randomly initialised (seed {INIT_SEED}), SD openpose adapter architecture"
        return {"base": self.context.models["base"], "t2i_adapter": adapter}
