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
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from PIL import Image

from spbench.canvas import CanvasTransform
from spbench.data.records import Sample

if TYPE_CHECKING:  # imported where used: listing methods must not import torch
    import torch


@dataclass(frozen=True)
class GenerationSettings:
    """Sampler settings shared by every method (the paper's protocol by default)."""

    steps: int = 50
    guidance_scale: float = 7.5
    conditioning_scale: float = 1.0
    scheduler: str = "unipc"
    negative_prompt: str = ""
    width: int = 512
    height: int = 512

    @classmethod
    def from_config(cls, gen: dict) -> "GenerationSettings":
        return cls(
            steps=gen["steps"], guidance_scale=gen["guidance_scale"],
            conditioning_scale=gen["conditioning_scale"], scheduler=gen["scheduler"],
            negative_prompt=gen["negative_prompt"], width=gen["canvas"], height=gen["canvas"],
        )


@dataclass(frozen=True)
class Request:
    """One image to generate: image ``k`` of ``sample``, with its seed and canvas transform."""

    sample: Sample
    k: int
    seed: int
    transform: CanvasTransform
    # The dataset's reference image of the sample (for conditions extracted from it, e.g. depth).
    image_path: str | None = None

    @property
    def key(self) -> str:
        return f"{self.sample.sample_id}_k{self.k}"


@dataclass
class MethodContext:
    """What a method gets from the harness: the resolved config, device and dtype."""

    config: dict
    device: torch.device = None  # None: the CPU
    dtype: torch.dtype = None    # None: float32

    def __post_init__(self):
        # torch is imported here, not with the module, so `spbench ls` lists methods without it.
        import torch

        if self.device is None:
            self.device = torch.device("cpu")
        if self.dtype is None:
            self.dtype = torch.float32

    @property
    def models(self) -> dict:
        return self.config["models"]

    @property
    def options(self) -> dict:
        return self.config["method"]


class Method(ABC):
    """Subclass, set the class attributes, implement :meth:`load` and :meth:`generate`."""

    name: ClassVar[str]
    condition: ClassVar[str]  # a kind known to spbench.conditions ("openpose", "spatial-pose", ...)
    description: ClassVar[str] = ""
    # Named variants (e.g. ablation rows): variant name -> description.
    variants: ClassVar[dict[str, str]] = {}
    # Images per prompt when the method fixes it (e.g. 1 for real images); None: --samples.
    fixed_samples: ClassVar[int | None] = None
    latent_channels: ClassVar[int] = 4
    vae_scale_factor: ClassVar[int] = 8

    def __init__(self, context: MethodContext):
        self.context = context

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
