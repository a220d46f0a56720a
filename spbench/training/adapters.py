"""The model `spbench train` trains: the method says which (:meth:`Method.trainable_model`, a
:class:`~spbench.models.trainable.Trainable`: the model, how it feeds the frozen UNet, its folder
in a checkpoint), its pipeline for validation images (:meth:`Method.build_pipeline`) and whether
its prompts carry keypoint tokens (:attr:`Method.uses_keypoint_tokens`); no method is named here.

The built-in ones: ControlNet and its depth and mask subclasses train a ControlNet from the UNet
(``controlnet/``), T2I-Adapter the SD openpose adapter architecture, randomly initialised
(``t2i_adapter/``), SP-Ctrl its SPR + ControlNet (``spctrl/``, with ``learned_embeds.bin`` when
keypoint tokens are trained).
"""

from __future__ import annotations

from spbench.errors import SpbenchError
from spbench.models.trainable import Trainable

__all__ = ["Trainable", "build_trainable", "trainable_methods"]


def build_trainable(method, sd, seed: int = 0) -> Trainable:
    """The method's trainable model, freshly initialised (from ``seed``: the randomly initialised
    layers must not depend on what ran before in the process) and in training mode."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trainable = method.trainable_model(sd, seed)
    if trainable is None:
        raise SpbenchError(f"method {method.name!r} cannot be trained by spbench train (trainable: {', '.join(trainable_methods())})")
    trainable.model.requires_grad_(True).train()
    return trainable


def trainable_methods() -> list[str]:
    """The registered methods that say what they train (those importable here)."""
    from spbench.methods.base import Method
    from spbench.methods.registry import get_method_class, method_names

    names = []
    for name in method_names():
        try:
            cls = get_method_class(name)
        except SpbenchError:
            continue
        if cls.trainable_model is not Method.trainable_model:
            names.append(name)
    return names
