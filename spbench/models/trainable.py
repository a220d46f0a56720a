"""What ``spbench train`` trains for a method: the model, how it feeds the frozen UNet, and the
folder a checkpoint keeps it in. A method returns one from :meth:`Method.trainable_model`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# How a trainable model's output reaches the UNet.
FEEDS = ("controlnet", "adapter")


@dataclass
class Trainable:
    model: Any
    kind: str  # "controlnet" (down/mid residuals) or "adapter" (intra-block features)
    # Its folder inside checkpoint-<step>/ (``save_pretrained``), which ``spbench run --checkpoint`` loads.
    subfolder: str

    def __post_init__(self):
        if self.kind not in FEEDS:
            raise ValueError(f"Trainable.kind {self.kind!r}: use one of {', '.join(FEEDS)}")

    def unet_inputs(self, model, noisy, timesteps, encoder_hidden_states, condition) -> dict:
        """The UNet keyword arguments that carry this model's output (``model`` may be wrapped
        by accelerate, so it is passed in)."""
        if self.kind == "adapter":
            return {"down_intrablock_additional_residuals": list(model(condition))}
        down, mid = model(noisy, timesteps, encoder_hidden_states=encoder_hidden_states,
                          controlnet_cond=condition, return_dict=False)
        return {"down_block_additional_residuals": list(down), "mid_block_additional_residual": mid}
