"""ControlNet (OpenPose) on Stable Diffusion 1.5 — the paper's main baseline.

The ControlNet comes from ``method.checkpoint`` (or the profile's ``models.controlnet``): a
diffusers ControlNet folder or hub id, e.g. ``lllyasviel/control_v11p_sd15_openpose``. With
neither, it is initialised from the UNet, as training from scratch starts.
"""

from __future__ import annotations

from spbench.methods import GenerationSettings, Method


class ControlNetMethod(Method):
    name = "controlnet"
    condition = "openpose"
    description = "ControlNet on SD1.5 driven by the RGB OpenPose rendering"

    def load(self) -> None:
        from spbench.generation.pipelines import controlnet_pipeline
        from spbench.models.controlnet import load_controlnet
        from spbench.models.stable_diffusion import load_sd_components, place

        self.sd = load_sd_components(self.context.models["base"])
        controlnet = load_controlnet(self.checkpoint, self.sd.unet)
        self.sd.to(self.context.device, self.context.dtype)
        place(controlnet, self.context.device, self.context.dtype)
        self.pipe = controlnet_pipeline(self.sd, controlnet, self.context.config["generation"]["scheduler"])

    def generate(self, prompts, conditions, latents, settings: GenerationSettings):
        from spbench.generation.pipelines import run_pipeline

        return run_pipeline(
            self.pipe, prompts, latents, settings,
            image=conditions, controlnet_conditioning_scale=settings.conditioning_scale,
        )

    @property
    def checkpoint(self) -> str | None:
        """``--checkpoint`` wins over the profile's ``models.controlnet``; None: from the UNet."""
        return self.context.options.get("checkpoint") or self.context.models.get("controlnet")

    def identity(self) -> dict:
        return {"base": self.context.models["base"], "controlnet": self.checkpoint or "initialised from the UNet"}
