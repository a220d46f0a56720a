"""OpenPose ControlNets on Stable Diffusion XL (StableDiffusionXLControlNetPipeline).

- ``controlnet-sdxl-xinsir``: ``xinsir/controlnet-openpose-sdxl-1.0``
- ``controlnet-sdxl-thibaud``: ``thibaud/controlnet-openpose-sdxl-1.0``

both on ``stabilityai/stable-diffusion-xl-base-1.0`` (``models.sdxl_base``). Their settings are
their model cards' (sources next to each value). SDXL's added time condition gets the canvas as
original and target size and no crop (the pipeline's defaults for an image of that size, passed
explicitly). Ancestral sampling draws its per-step noise from a generator per request. The
invisible watermark diffusers adds when the ``invisible-watermark`` package is installed is off:
it would make pixels depend on an optional package.

Not done: xinsir's card advises thicker OpenPose lines than controlnet_aux draws (its own
``draw_bodypose``, line width and circle radius scaled with the image size); the condition here is
the annotator's standard rendering (``openpose18``), the same for both checkpoints.
"""

from __future__ import annotations

from spbench_baselines.newer_bases import NewerBaseControlNet, negative_prompts
from spbench.models.sdxl import SDXL_SCHEDULERS


class SDXLPoseControlNet(NewerBaseControlNet):
    base_model = "sdxl_base"
    base_name = "SDXL"
    schedulers = SDXL_SCHEDULERS
    latent_channels = 4  # SDXL's VAE: 4 x H/8 x W/8

    def load_base(self):
        from spbench.models.sdxl import load_sdxl_components

        return load_sdxl_components(self.context.models["sdxl_base"], self.context.models.get("sdxl_vae"))

    def load_controlnet(self):
        from spbench.models.sdxl import load_sdxl_controlnet

        return load_sdxl_controlnet(self.checkpoint, self.checkpoint_setting)

    def build(self, sd, controlnet):
        from diffusers import StableDiffusionXLControlNetPipeline

        from spbench.models.sdxl import sdxl_scheduler

        return StableDiffusionXLControlNetPipeline(
            vae=sd.vae, text_encoder=sd.text_encoder, text_encoder_2=sd.text_encoder_2, tokenizer=sd.tokenizer,
            tokenizer_2=sd.tokenizer_2, unet=sd.unet, controlnet=controlnet,
            scheduler=sdxl_scheduler(self.context.config["generation"]["scheduler"], sd.scheduler_config),
            add_watermarker=False,
        )

    def identity(self) -> dict:
        vae = self.context.models.get("sdxl_vae")
        return {**super().identity(), **({"sdxl_vae": vae} if vae else {})}

    def pipeline_call(self, prompts, conditions, latents, settings):
        from spbench.models.request_rng import request_generators

        size = (settings.height, settings.width)
        return dict(
            prompt=prompts, negative_prompt=negative_prompts(prompts, settings), image=conditions,
            num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale,
            controlnet_conditioning_scale=settings.conditioning_scale,
            latents=latents, height=settings.height, width=settings.width,
            # SDXL's size conditioning: generated at the canvas size, uncropped.
            original_size=size, target_size=size, crops_coords_top_left=(0, 0),
            # Only an ancestral sampler draws from these: one generator per request.
            generator=request_generators(latents, "sdxl-sampler"),
        )


class XinsirOpenPoseSDXL(SDXLPoseControlNet):
    name = "controlnet-sdxl-xinsir"
    description = "xinsir/controlnet-openpose-sdxl-1.0 on SDXL base 1.0 (OpenPose-18), its card's settings"
    checkpoint_model = "controlnet_sdxl_xinsir"
    recommended_by = "https://huggingface.co/xinsir/controlnet-openpose-sdxl-1.0"
    # From the card's "How to Get Started" code:
    recommended = {
        # EulerAncestralDiscreteScheduler.from_pretrained(<SDXL base>, subfolder="scheduler")
        "generation.scheduler": "euler-ancestral",
        "generation.steps": 30,                 # num_inference_steps=30
        # No guidance_scale given: StableDiffusionXLControlNetPipeline's default (5.0 in diffusers 0.42.1).
        "generation.guidance_scale": 5.0,
        "generation.conditioning_scale": 1.0,   # controlnet_conditioning_scale = 1.0
        # "resize the image resolution to 1024 * 1024 or same bucket resolution to get the best performance"
        "generation.canvas": 1024,
        # AutoencoderKL.from_pretrained("madebyollin/sdxl-vae-fp16-fix") (fp16 without overflow)
        "models.sdxl_vae": "madebyollin/sdxl-vae-fp16-fix",
    }


class ThibaudOpenPoseSDXL(SDXLPoseControlNet):
    name = "controlnet-sdxl-thibaud"
    description = "thibaud/controlnet-openpose-sdxl-1.0 on SDXL base 1.0 (OpenPose-18), its card's settings"
    checkpoint_model = "controlnet_sdxl_thibaud"
    recommended_by = "https://huggingface.co/thibaud/controlnet-openpose-sdxl-1.0"
    # From the card's "Using in diffusers" code:
    recommended = {
        # The pipeline is loaded from the SDXL base without another scheduler: its EulerDiscreteScheduler.
        "generation.scheduler": "euler",
        "generation.steps": 25,                 # num_inference_steps=25
        # No guidance_scale or controlnet_conditioning_scale given: the pipeline's defaults (5.0, 1.0).
        "generation.guidance_scale": 5.0,
        "generation.conditioning_scale": 1.0,
        "generation.canvas": 1024,              # image=openpose_image.resize((1024, 1024))
    }
