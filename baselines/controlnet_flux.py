"""Union ControlNets on FLUX.1-dev in pose mode (FluxControlNetPipeline).

- ``controlnet-flux-union``: ``InstantX/FLUX.1-dev-Controlnet-Union``
- ``controlnet-flux-union-pro``: ``Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro`` (wrapped in a
  ``FluxMultiControlNetModel``, as its card always recommends)

both on ``black-forest-labs/FLUX.1-dev`` (``models.flux_base``), with their model cards'
settings. A Union ControlNet is told which kind of condition it gets by ``control_mode``
(``method.options.control_mode``): pose is mode 4 on both cards.

FLUX.1-dev is guidance-distilled: ``generation.guidance_scale`` is the value of its guidance
embedding (the cards' 3.5), not classifier-free guidance, and a negative prompt would be unused,
so it is refused. Latents: the engine draws each request's noise in the unpacked shape
``(16, H/8, W/8)``; :func:`spbench.models.flux.pack_latents` packs it into the
``((H/16)*(W/16), 64)`` tokens the pipeline's ``latents=`` takes, as the pipeline packs noise it
draws itself. The pipeline samples the VAE posterior of the control image with the generator it is
given: one per request here. The canvas must be a multiple of 16.
"""

from __future__ import annotations

from spbench_baselines.newer_bases import NewerBaseControlNet
from spbench.errors import SpbenchError
from spbench.models.sd3 import FLOW_SCHEDULERS
from spbench.run.requests import MethodContext


class FluxUnionPoseControlNet(NewerBaseControlNet):
    base_model = "flux_base"
    base_name = "FLUX"
    schedulers = FLOW_SCHEDULERS
    canvas_multiple = 16
    latent_channels = 16
    multi = False  # wrap the ControlNet in a FluxMultiControlNetModel

    def __init__(self, context: MethodContext):
        super().__init__(context)
        if context.config["generation"]["negative_prompt"]:
            raise SpbenchError(f"generation.negative_prompt is set, but {self.name} runs FLUX.1-dev, which has no "
                               "classifier-free guidance to use it: leave it empty (--set generation.negative_prompt=)")
        mode = context.method_options.get("control_mode")
        if not isinstance(mode, int) or isinstance(mode, bool) or mode < 0:
            raise SpbenchError(f"method.options.control_mode={mode!r}: {self.name} needs the Union ControlNet's mode "
                               "number (pose: 4); pass --set method.options.control_mode=4")
        self.control_mode = mode

    def identity(self) -> dict:
        return {**super().identity(), "control_mode": self.control_mode,
                "guidance": "generation.guidance_scale is FLUX.1-dev's distilled guidance embedding (no CFG)"}

    def load_base(self):
        from spbench.models.flux import load_flux_components

        return load_flux_components(self.context.models["flux_base"])

    def load_controlnet(self):
        from spbench.models.flux import load_flux_controlnet

        controlnet = load_flux_controlnet(self.checkpoint, self.checkpoint_setting)
        modes = controlnet.config.get("num_mode")
        if not modes or self.control_mode >= modes:
            raise SpbenchError(f"method.options.control_mode={self.control_mode}: the ControlNet {self.checkpoint} "
                               f"has {'no control modes' if not modes else f'modes 0-{modes - 1}'}; "
                               f"{self.name} runs a Union ControlNet in pose mode")
        return controlnet

    def build(self, sd, controlnet):
        from diffusers import FluxControlNetPipeline
        from diffusers.models import FluxMultiControlNetModel

        from spbench.models.sd3 import flow_scheduler

        return FluxControlNetPipeline(
            transformer=sd.transformer, vae=sd.vae, text_encoder=sd.text_encoder, text_encoder_2=sd.text_encoder_2,
            tokenizer=sd.tokenizer, tokenizer_2=sd.tokenizer_2,
            controlnet=FluxMultiControlNetModel([controlnet]) if self.multi else controlnet,
            scheduler=flow_scheduler(self.context.config["generation"]["scheduler"], sd.scheduler_config, "FLUX"),
        )

    def pipeline_call(self, prompts, conditions, latents, settings):
        from spbench.models.flux import pack_latents
        from spbench.models.request_rng import request_generators

        one = not self.multi  # a FluxMultiControlNetModel takes one list entry per ControlNet
        return dict(
            prompt=prompts,
            control_image=conditions if one else [conditions],
            control_mode=self.control_mode if one else [self.control_mode],
            controlnet_conditioning_scale=settings.conditioning_scale if one else [settings.conditioning_scale],
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance_scale,  # FLUX.1-dev's guidance embedding
            latents=pack_latents(latents), height=settings.height, width=settings.width,
            # The control image's VAE posterior sample: one generator per request.
            generator=request_generators(latents, "flux-control-posterior"),
        )


class InstantXUnionPose(FluxUnionPoseControlNet):
    name = "controlnet-flux-union"
    description = "InstantX/FLUX.1-dev-Controlnet-Union in pose mode on FLUX.1-dev (OpenPose-18), its card's settings"
    checkpoint_model = "controlnet_flux_union"
    recommended_by = "https://huggingface.co/InstantX/FLUX.1-dev-Controlnet-Union"
    # From the card's "Control Mode" table and "Inference" code:
    recommended = {
        "method.options.control_mode": 4,        # | 4 | pose |
        # Loaded from FLUX.1-dev without another scheduler: its FlowMatchEulerDiscreteScheduler.
        "generation.scheduler": "flow-euler",
        "generation.steps": 24,                 # num_inference_steps=24
        "generation.guidance_scale": 3.5,       # guidance_scale=3.5 (the guidance embedding)
        "generation.conditioning_scale": 0.5,   # controlnet_conditioning_scale = 0.5
        # The card generates at its control image's size; FLUX.1-dev's pipelines default to
        # 1024 x 1024 (default_sample_size 128 x the VAE's 8).
        "generation.canvas": 1024,
        "generation.dtype": "bfloat16",         # torch_dtype=torch.bfloat16
    }


class ShakkerUnionProPose(FluxUnionPoseControlNet):
    name = "controlnet-flux-union-pro"
    description = "Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro in pose mode on FLUX.1-dev (OpenPose-18), its card's settings"
    checkpoint_model = "controlnet_flux_union_pro"
    recommended_by = "https://huggingface.co/Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro"
    # "we always recommend loading via FluxMultiControlNetModel"
    multi = True
    # From the card's "Model Cards" notes and its inference code:
    recommended = {
        "method.options.control_mode": 4,        # "canny (0), tile (1), depth (2), blur (3), pose (4), ..."
        "generation.scheduler": "flow-euler",   # FLUX.1-dev's own FlowMatchEulerDiscreteScheduler
        "generation.steps": 24,                 # num_inference_steps=24
        "generation.guidance_scale": 3.5,       # guidance_scale=3.5 (the guidance embedding)
        # "The recommended controlnet_conditioning_scale is 0.3-0.8"; the card's only example
        # combines two controls (0.2, 0.4), so a single pose control gets 0.5 (the InstantX card's).
        "generation.conditioning_scale": 0.5,
        "generation.canvas": 1024,              # FLUX.1-dev's default size, as for controlnet-flux-union
        "generation.dtype": "bfloat16",         # torch_dtype=torch.bfloat16
    }
