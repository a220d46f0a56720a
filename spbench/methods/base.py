"""The method interface: what a pose-guided generator must provide to be benchmarked.

A method names the condition it is driven by, builds its models once in :meth:`Method.load`,
and turns a batch of prompts, condition images and initial latents into images. The engine owns
everything else (seeds, batching, files, resumption, sharding), so a method is only its model.

Write your own in your package and register it under the ``spbench.methods`` entry point::

    [project.entry-points."spbench.methods"]
    my-method = "my_package.module:MyMethod"
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from PIL import Image

from spbench.data.records import Sample
from spbench.run.requests import GenerationSettings, MethodContext, Request

if TYPE_CHECKING:  # imported where used: listing methods must not import torch
    import torch


class Method(ABC):
    """Subclass, set the class attributes, implement :meth:`load` and :meth:`generate`."""

    name: ClassVar[str]
    condition: ClassVar[str]  # a kind known to spbench.conditions ("openpose", "spatial-pose", ...)
    description: ClassVar[str] = ""
    # Named variants (e.g. ablation rows): variant name -> description.
    variants: ClassVar[dict[str, str]] = {}
    # Images per prompt when the method fixes it (e.g. 1 for real images); None: --images-per-prompt.
    fixed_images_per_prompt: ClassVar[int | None] = None
    latent_channels: ClassVar[int] = 4
    vae_scale_factor: ClassVar[int] = 8

    # What the harness, the metrics and `spbench train` ask a method (never its name):
    # whether it generates with Stable Diffusion (models.base; a profile without one cannot run it),
    uses_base_model: ClassVar[bool] = True
    # the models.<role> of that base model (another than SD1.5's "base" is a departure from the paper),
    base_model: ClassVar[str] = "base"
    # its recommended settings (dotted key -> value, e.g. {"generation.steps": 30}): over the
    # profile, under flags and --set; recorded as method.recommended (spbench.config.apply_recommended),
    recommended: ClassVar[dict[str, object]] = {}
    # the models.<role> that --checkpoint stands in for (the config then shows it there; None: none),
    checkpoint_model: ClassVar[str | None] = None
    # whether its conditions (or images) are made from the dataset's image files (request.image_path),
    # so that a resumed run checks those files (default: whether the class overrides condition_image),
    reads_reference_images: ClassVar[bool] = False
    # whether its images are the dataset's own (the Real Image row: the official pose protocol then
    # scores the dataset files themselves),
    returns_dataset_images: ClassVar[bool] = False
    # and the metrics that do not apply to it: metric -> the reason recorded instead of a score.
    not_applicable: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "fixed_samples" in cls.__dict__:  # its name before it said what it holds
            cls.fixed_images_per_prompt = cls.fixed_samples
        if "condition_image" in cls.__dict__ and "reads_reference_images" not in cls.__dict__:
            cls.reads_reference_images = True

    def __init__(self, context: MethodContext):
        self.context = context

    @property
    def uses_keypoint_tokens(self) -> bool:
        """Whether its prompts carry keypoint tokens (KCL): `spbench train` then trains their rows and
        adds the heatmap loss unless told otherwise."""
        return False

    def trainable_model(self, sd, seed: int):
        """What `spbench train` trains: a :class:`spbench.models.trainable.Trainable` (the model,
        freshly initialised from the SD components ``sd`` with torch's RNG seeded from ``seed``, how
        it feeds the UNet, its checkpoint folder). None: the method cannot be trained."""
        return None

    def build_pipeline(self, sd, model):
        """The diffusers pipeline around ``sd`` and the method's ``model`` with the run's scheduler:
        what :meth:`load` builds, and what training validates the model being trained with."""
        raise NotImplementedError(f"method {self.name!r} builds no diffusers pipeline")

    def pipeline_inputs(self, conditions: list[Image.Image], scale: float) -> dict:
        """The pipeline keywords that carry the conditions and their scale (a ControlNet pipeline's)."""
        return {"image": list(conditions), "controlnet_conditioning_scale": scale}

    def prompt(self, sample: Sample) -> str:
        """The text the model is given for ``sample``."""
        return sample.prompt

    def condition_image(self, request: Request) -> Image.Image:
        """The request's condition on the canvas (one per sample: k does not matter), drawn as
        ``generation.condition_render`` says (official: at the original size, then resized);
        override for conditions that need a model or the reference image (``request.image_path``)."""
        from spbench.conditions import render_condition

        return render_condition(self.condition, request.sample, request.transform, self.condition_render)

    @property
    def condition_render(self) -> str:
        """generation.condition_render of the run (the default when the config has none)."""
        from spbench.config import DEFAULTS

        default = DEFAULTS["generation"]["condition_render"]
        return self.context.config.get("generation", {}).get("condition_render", default)

    def latent_shape(self, settings: GenerationSettings) -> tuple[int, int, int]:
        f = self.vae_scale_factor
        return (self.latent_channels, settings.height // f, settings.width // f)

    def manifest_fields(self, request: Request) -> dict:
        """Extra per-request facts for manifest.jsonl (e.g. {"prompt_truncated": True}); must not
        need the models loaded by :meth:`load` (the manifest may be written after a resume)."""
        return {}

    def identity(self) -> dict:
        """Model identities for the result record (ids, folders, file hashes)."""
        return {}

    @abstractmethod
    def load(self) -> None:
        """Build or load the models (called once, before the first batch)."""

    @abstractmethod
    def generate(
        self,
        prompts: list[str],
        conditions: list[Image.Image],
        latents: torch.Tensor,
        settings: GenerationSettings,
    ) -> list[Image.Image]:
        """One image per prompt, denoised from ``latents`` (already on the method's device)."""
