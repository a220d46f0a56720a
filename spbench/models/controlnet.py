"""ControlNet models: from a checkpoint folder, or initialised from the UNet (training from scratch)."""

from __future__ import annotations

from spbench.models.hub import load_pretrained


def load_controlnet(checkpoint: str | None, unet, conditioning_channels: int = 3, setting: str = "method.checkpoint"):
    """A diffusers ``ControlNetModel`` from ``checkpoint``, or ``ControlNetModel.from_unet(unet)``.

    ``from_unet`` copies the UNet encoder and zero-initialises the output convolutions, as
    ControlNet training starts; such a model does not change the UNet's output until trained.
    """
    from diffusers import ControlNetModel

    if checkpoint:
        model = load_pretrained(ControlNetModel, checkpoint, role="ControlNet", setting=setting)
    else:
        model = ControlNetModel.from_unet(unet, conditioning_channels=conditioning_channels)
    return model.requires_grad_(False).eval()
