"""ControlNet (OpenPose) on Stable Diffusion 1.5 — the paper's main baseline.

The ControlNet comes from ``method.checkpoint`` (or the profile's ``models.controlnet``): a
diffusers ControlNet folder or hub id, e.g. ``lllyasviel/control_v11p_sd15_openpose``. With
neither, it is initialised from the UNet, as training from scratch starts.

Variant ``kcl`` is Table 2's "+ KCL" row: the same ControlNet with keypoint tokens of the visible
keypoints in the prompt (:mod:`spbench.models.keypoint_tokens`); their rows come from
``method.options.learned_embeds`` or the checkpoint folder's ``learned_embeds.bin``, else the
keypoint words. (The heatmap loss of that row is a training matter.)

The pose condition is ``method.options.condition``: ``openpose`` (the SP-Ctrl paper's rendering,
which the paper's ControlNets were trained on), ``openpose18`` or ``openpose18-blend`` (the
OpenPose-18 drawings the public checkpoints were trained on, :mod:`spbench.conditions.openpose18`).
Unset, it is the format a known public checkpoint was trained on
(``lllyasviel/control_v11p_sd15_openpose``: openpose18; ``lllyasviel/sd-controlnet-openpose``:
openpose18-blend), else ``openpose``.
"""

from __future__ import annotations

from spbench.conditions.openpose18 import POSE_CONDITIONS, pose_condition
from spbench.methods import Method
from spbench.run.requests import GenerationSettings, MethodContext, Request


class ControlNetMethod(Method):
    name = "controlnet"
    condition = "openpose"
    description = "ControlNet on SD1.5 driven by the RGB OpenPose rendering (public checkpoints: the OpenPose-18 they were trained on)"
    variants = {"kcl": "Table 2 '+ KCL': OpenPose ControlNet with keypoint tokens in the prompt"}
    # --checkpoint stands in for the profile's models.controlnet (None in subclasses that do not read it).
    checkpoint_model = "controlnet"

    def __init_subclass__(cls, **kwargs):
        # "kcl" belongs to the OpenPose row; subclasses (depth, mask) list their own variants.
        super().__init_subclass__(**kwargs)
        if "variants" not in cls.__dict__:
            cls.variants = {}

    def __init__(self, context: MethodContext):
        from spbench.models.keypoint_tokens import KeypointPrompts, default_learned_path, require_learned_path
        from spbench.run.resolve import run_schema

        super().__init__(context)
        if self.condition in POSE_CONDITIONS:  # the OpenPose row (not the depth / mask subclasses)
            # this run's pose format: the option, else what the checkpoint was trained on
            self.condition = pose_condition(context.method_options.get("condition"), self.checkpoint, run_schema(context.config))
        self.kcl = None
        if context.variant == "kcl":
            options = context.method_options
            learned = options.get("learned_embeds") or default_learned_path(self.checkpoint)
            require_learned_path(learned, self.checkpoint, bool(options.get("allow_untrained_tokens")), "controlnet --variant kcl")
            self.kcl = KeypointPrompts(run_schema(context.config), context.models["base"], learned)

    def prompt(self, sample) -> str:
        return self.kcl.prompt(sample) if self.kcl else sample.prompt

    def manifest_fields(self, request: Request) -> dict:
        return self.kcl.manifest_fields(request.sample) if self.kcl else {}

    def load(self) -> None:
        from spbench.models.controlnet import load_controlnet
        from spbench.models.stable_diffusion import load_sd_components, place

        self.sd = load_sd_components(self.context.models["base"])
        controlnet = load_controlnet(self.checkpoint, self.sd.unet)
        if self.kcl:
            self.kcl.attach(self.sd.tokenizer, self.sd.text_encoder)
        self.sd.to(self.context.device, self.context.dtype)
        place(controlnet, self.context.device, self.context.dtype)
        self.pipe = self.build_pipeline(self.sd, controlnet)

    def build_pipeline(self, sd, model):
        from spbench.models.pipelines import controlnet_pipeline

        return controlnet_pipeline(sd, model, self.context.config["generation"]["scheduler"])

    @property
    def uses_keypoint_tokens(self) -> bool:
        return self.kcl is not None

    def trainable_model(self, sd, seed: int):
        """A ControlNet from the UNet (``--checkpoint`` plays no part), saved as ``controlnet/``."""
        from spbench.models.controlnet import load_controlnet
        from spbench.models.trainable import Trainable

        return Trainable(load_controlnet(None, sd.unet), "controlnet", "controlnet")

    def generate(self, prompts, conditions, latents, settings: GenerationSettings):
        from spbench.models.pipelines import run_pipeline

        return run_pipeline(self.pipe, prompts, latents, settings, **self.pipeline_inputs(conditions, settings.conditioning_scale))

    @property
    def checkpoint(self) -> str | None:
        """``--checkpoint`` wins over the profile's ``models.<checkpoint_model>``; None: from the UNet."""
        role = self.checkpoint_model
        return self.context.checkpoint or (self.context.models.get(role) if role else None)

    def identity(self) -> dict:
        kcl = self.kcl.identity() if self.kcl else {}
        return {"base": self.context.models["base"], "controlnet": self.checkpoint or "initialised from the UNet", **kcl}
