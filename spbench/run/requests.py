"""What a method is given: one image to make (a request), the sampler settings of the run, and
its context (resolved config, device, dtype)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from spbench.canvas import CanvasTransform
from spbench.config import DEFAULTS
from spbench.data.records import Sample

if TYPE_CHECKING:  # imported where used: listing methods must not import torch
    import torch

_GENERATION = DEFAULTS["generation"]


@dataclass(frozen=True)
class GenerationSettings:
    """Sampler settings shared by every method (the paper's protocol by default: the
    ``generation`` defaults of :data:`spbench.config.DEFAULTS`)."""

    steps: int = _GENERATION["steps"]
    guidance_scale: float = _GENERATION["guidance_scale"]
    conditioning_scale: float = _GENERATION["conditioning_scale"]
    scheduler: str = _GENERATION["scheduler"]
    negative_prompt: str = _GENERATION["negative_prompt"]
    width: int = _GENERATION["canvas"]
    height: int = _GENERATION["canvas"]

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
    def variant(self) -> str | None:
        """``--variant`` (``method.variant``)."""
        return self.config["method"].get("variant")

    @property
    def checkpoint(self) -> str | None:
        """``--checkpoint`` (``method.checkpoint``): trained weights the method loads."""
        return self.config["method"].get("checkpoint")

    @property
    def method_options(self) -> dict:
        """``method.options``: the method's own settings (``--set method.options.KEY=VALUE``)."""
        return self.config["method"].get("options") or {}

    @property
    def options(self) -> dict:
        """The whole ``method`` section (name, variant, checkpoint, options), as methods written
        before :attr:`variant`, :attr:`checkpoint` and :attr:`method_options` read it."""
        return self.config["method"]
