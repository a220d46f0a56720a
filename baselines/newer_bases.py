"""What the pose ControlNets on newer bases (SDXL, SD3, FLUX) share.

Each method is one public checkpoint run through diffusers' own pipeline for its base, with the
settings its model card recommends (``recommended``: sampler, steps, guidance, conditioning
scale, canvas; recorded in the run's config as ``method.recommended`` and listed as departures
from the SD1.5 paper protocol; ``--steps`` / ``--set`` still win). Models come from the config:
``models.<base_model>`` for the base and ``models.<checkpoint_model>`` for the ControlNet, which
``--checkpoint`` stands in for. Conditions are OpenPose-18 renderings (``openpose18``), the body
format these checkpoints were trained on; ``method.options.condition`` picks another pose drawing
(``openpose`` for a non-human keypoint set such as AP-10K's, which OpenPose-18 cannot draw).

The engine's per-request noise arrives in each base's unpacked latent shape (``latent_shape``);
randomness the pipelines draw besides it (ancestral sampling noise, the VAE posterior sample of
a control image) is drawn per request too (:mod:`spbench.models.request_rng`), so an image
depends on its own request only, not on its batch, order or process.
"""

from __future__ import annotations

from typing import ClassVar

from spbench.errors import SpbenchError
from spbench.methods import Method
from spbench.run.requests import GenerationSettings, MethodContext


class NewerBaseControlNet(Method):
    condition = "openpose18"
    base_model: ClassVar[str]               # models.<role> of the base (sdxl_base, sd3_base, flux_base)
    checkpoint_model: ClassVar[str]         # models.<role> of the ControlNet (--checkpoint stands in for it)
    base_name: ClassVar[str] = ""           # "SDXL", "SD3", "FLUX" (messages)
    schedulers: ClassVar[tuple[str, ...]] = ()  # generation.scheduler values this base can sample with
    canvas_multiple: ClassVar[int] = 8      # the canvas must be a multiple of this (VAE x patch size)
    recommended_by: ClassVar[str] = ""      # the model card the recommended settings come from

    def __init__(self, context: MethodContext):
        from spbench.conditions.openpose18 import pose_condition
        from spbench.run.resolve import run_schema

        super().__init__(context)
        # The pose drawing: method.options.condition, else OpenPose-18 (the human body format of the
        # annotators these checkpoints were trained with), which needs a human (COCO-named) schema.
        try:
            self.condition = pose_condition(context.method_options.get("condition") or self.condition, None,
                                            run_schema(context.config))
        except SpbenchError as e:
            raise SpbenchError(f"{self.name}: {e} (--set method.options.condition=openpose; these ControlNets "
                               "were trained on human poses only)") from None
        gen = context.config["generation"]
        if gen["scheduler"] not in self.schedulers:
            raise SpbenchError(f"generation.scheduler={gen['scheduler']!r}: {self.name} ({self.base_name}) samples with "
                               f"{' or '.join(self.schedulers)}; pass --set generation.scheduler=NAME")
        if gen["canvas"] % self.canvas_multiple:
            raise SpbenchError(f"generation.canvas={gen['canvas']}: {self.name} needs a multiple of {self.canvas_multiple} "
                               f"({self.base_name}'s VAE and patch size); pass --set generation.canvas=N")
        if not self.checkpoint:
            raise SpbenchError(f"models.{self.checkpoint_model} is not set (the ControlNet {self.name} runs): pass "
                               f"--checkpoint ID_OR_FOLDER or --set models.{self.checkpoint_model}=ID_OR_FOLDER")

    @property
    def checkpoint(self) -> str | None:
        """``--checkpoint``, else the profile's ``models.<checkpoint_model>``."""
        return self.context.checkpoint or self.context.models.get(self.checkpoint_model)

    @property
    def checkpoint_setting(self) -> str:
        return f"models.{self.checkpoint_model}"

    def identity(self) -> dict:
        return {self.base_model: self.context.models[self.base_model], "controlnet": self.checkpoint,
                "recommended_by": self.recommended_by}

    # -- what each base provides ---------------------------------------------------------------
    def load_base(self):
        """The base's components (:mod:`spbench.models.sdxl` / ``sd3`` / ``flux``)."""
        raise NotImplementedError

    def load_controlnet(self):
        raise NotImplementedError

    def build(self, components, controlnet):
        """The diffusers pipeline around the components, sampling with generation.scheduler."""
        raise NotImplementedError

    def pipeline_call(self, prompts: list[str], conditions: list, latents, settings: GenerationSettings) -> dict:
        """The pipeline's keyword arguments for one batch."""
        raise NotImplementedError

    # -- the Method interface ------------------------------------------------------------------
    def load(self) -> None:
        from spbench.models.stable_diffusion import place

        components = self.load_base()
        controlnet = self.load_controlnet()
        for module in (*components.modules(), controlnet):
            place(module, self.context.device, self.context.dtype)
        self.components = components
        self.pipe = self.build(components, controlnet)
        # The engine shows one progress bar for the whole run instead of one per batch.
        self.pipe.set_progress_bar_config(disable=True)

    def generate(self, prompts, conditions, latents, settings: GenerationSettings):
        import torch

        with torch.inference_mode():
            out = self.pipe(**self.pipeline_call(list(prompts), list(conditions), latents, settings), output_type="pil")
        return list(out.images)


def negative_prompts(prompts: list[str], settings: GenerationSettings) -> list[str] | None:
    """generation.negative_prompt for every prompt (None when empty: the protocol has none)."""
    return [settings.negative_prompt] * len(prompts) if settings.negative_prompt else None
