"""The trainable model of each method, how it feeds the frozen UNet, and its validation pipeline.

- ControlNet family (``controlnet``, ``controlnet-depth``, ``controlnet-mask``): a ControlNet
  initialised from the UNet (``ControlNetModel.from_unet``); its residuals go into the UNet's
  down and mid blocks. Saved as ``controlnet/``.
- ``t2i-adapter``: the SD openpose adapter architecture, randomly initialised; its features are
  added inside the UNet's down blocks. Saved as ``t2i_adapter/``.
- ``spctrl``: the SP-Ctrl ControlNet (SPR + ControlNet, :mod:`spbench.models.spctrl`). Saved as
  ``spctrl/`` together with ``learned_embeds.bin`` when keypoint tokens are trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spbench.errors import SpbenchError

CONTROLNET_METHODS = ("controlnet", "controlnet-depth", "controlnet-mask")


@dataclass
class Trainable:
    model: Any
    kind: str  # "controlnet" (down/mid residuals) or "adapter" (intra-block features)
    subfolder: str  # model folder inside checkpoint-<step>/

    def unet_inputs(self, model, noisy, timesteps, encoder_hidden_states, condition) -> dict:
        """The UNet keyword arguments that carry this model's output (``model`` may be wrapped
        by accelerate, so it is passed in)."""
        if self.kind == "adapter":
            return {"down_intrablock_additional_residuals": list(model(condition))}
        down, mid = model(noisy, timesteps, encoder_hidden_states=encoder_hidden_states,
                          controlnet_cond=condition, return_dict=False)
        return {"down_block_additional_residuals": list(down), "mid_block_additional_residual": mid}


def build_trainable(method_name: str, method, sd, seed: int = 0) -> Trainable:
    """The method's trainable model, freshly initialised (from ``seed``: the randomly initialised
    layers must not depend on what ran before in the process) and in training mode."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build(method_name, method, sd, seed)


def _build(method_name: str, method, sd, seed: int) -> Trainable:
    if method_name in CONTROLNET_METHODS:
        from spbench.models.controlnet import load_controlnet

        model, kind, folder = load_controlnet(None, sd.unet), "controlnet", "controlnet"
    elif method_name == "t2i-adapter":
        from spbench_baselines.t2i_adapter import adapter_for_unet

        model, kind, folder = adapter_for_unet(sd.unet, method.vae_scale_factor, seed=seed), "adapter", "t2i_adapter"
    elif method_name == "spctrl":
        from spbench.training.spctrl_bridge import build_spctrl

        model, kind, folder = build_spctrl(method, sd), "controlnet", "spctrl"
    else:
        trainable = ", ".join((*CONTROLNET_METHODS, "t2i-adapter", "spctrl"))
        raise SpbenchError(f"method {method_name!r} cannot be trained by spbench train (trainable: {trainable})")
    return Trainable(model.requires_grad_(True).train(), kind, folder)


def validation_pipeline(method_name: str, model, sd, scheduler: str):
    """A diffusers pipeline around the frozen SD components and the model being trained."""
    if method_name == "t2i-adapter":
        from spbench_baselines.t2i_adapter import adapter_pipeline

        return adapter_pipeline(sd, model, scheduler)
    if method_name == "spctrl":
        from spbench.training.spctrl_bridge import spctrl_pipeline

        return spctrl_pipeline(sd, model, scheduler)
    from spbench.generation.pipelines import controlnet_pipeline

    return controlnet_pipeline(sd, model, scheduler)


def pipeline_inputs(method_name: str, conditions, scale: float) -> dict:
    if method_name == "t2i-adapter":
        return {"image": list(conditions), "adapter_conditioning_scale": scale}
    return {"image": list(conditions), "controlnet_conditioning_scale": scale}
