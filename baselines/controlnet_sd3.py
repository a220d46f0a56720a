"""The OpenPose ControlNet on Stable Diffusion 3 (StableDiffusion3ControlNetPipeline).

``controlnet-sd3``: ``InstantX/SD3-Controlnet-Pose`` on
``stabilityai/stable-diffusion-3-medium-diffusers`` (``models.sd3_base``), with its model card's
settings. The pipeline passes the control image through SD3's VAE and samples its posterior with
torch's global generator; here that sample is drawn from a generator per request
(:func:`spbench.models.request_rng.posterior_sampled_per_request`), so the image does not depend
on the batch. Latents: 16 channels, H/8 x W/8; the canvas must be a multiple of 16 (2x2 patches).
"""

from __future__ import annotations

from spbench_baselines.newer_bases import NewerBaseControlNet, negative_prompts
from spbench.models.sd3 import FLOW_SCHEDULERS


class SD3PoseControlNet(NewerBaseControlNet):
    name = "controlnet-sd3"
    description = "InstantX/SD3-Controlnet-Pose on SD3 medium (OpenPose-18), its card's settings"
    base_model = "sd3_base"
    checkpoint_model = "controlnet_sd3"
    base_name = "SD3"
    schedulers = FLOW_SCHEDULERS
    canvas_multiple = 16
    latent_channels = 16
    recommended_by = "https://huggingface.co/InstantX/SD3-Controlnet-Pose"
    # From the card's demo (diffusers >= 0.30 version of the card):
    recommended = {
        # Loaded from the SD3 base without another scheduler: its FlowMatchEulerDiscreteScheduler.
        "generation.scheduler": "flow-euler",
        # No num_inference_steps or guidance_scale given: StableDiffusion3ControlNetPipeline's
        # defaults in diffusers 0.42.1 (28 and 7.0; the card's earlier demo passed the same two).
        "generation.steps": 28,
        "generation.guidance_scale": 7.0,
        "generation.conditioning_scale": 0.5,  # controlnet_conditioning_scale=0.5
        # "only 1024*1024 pixel resolution was used during the training phase, the inference
        # performs best at this size"
        "generation.canvas": 1024,
    }

    def load_base(self):
        from spbench.models.sd3 import load_sd3_components

        return load_sd3_components(self.context.models["sd3_base"])

    def load_controlnet(self):
        from spbench.models.sd3 import load_sd3_controlnet

        return load_sd3_controlnet(self.checkpoint, self.checkpoint_setting)

    def build(self, sd, controlnet):
        from diffusers import StableDiffusion3ControlNetPipeline

        from spbench.models.sd3 import flow_scheduler

        return StableDiffusion3ControlNetPipeline(
            transformer=sd.transformer, vae=sd.vae, text_encoder=sd.text_encoder, text_encoder_2=sd.text_encoder_2,
            text_encoder_3=sd.text_encoder_3, tokenizer=sd.tokenizer, tokenizer_2=sd.tokenizer_2,
            tokenizer_3=sd.tokenizer_3, controlnet=controlnet,
            scheduler=flow_scheduler(self.context.config["generation"]["scheduler"], sd.scheduler_config, "SD3"),
        )

    def pipeline_call(self, prompts, conditions, latents, settings):
        return dict(
            prompt=prompts, negative_prompt=negative_prompts(prompts, settings), control_image=conditions,
            num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale,
            controlnet_conditioning_scale=settings.conditioning_scale,
            latents=latents, height=settings.height, width=settings.width,
        )

    def generate(self, prompts, conditions, latents, settings):
        from spbench.models.request_rng import posterior_sampled_per_request, request_generators

        with posterior_sampled_per_request(self.pipe.vae, request_generators(latents, "sd3-control-posterior")):
            return super().generate(prompts, conditions, latents, settings)
