"""What training takes from the SP-Ctrl code: the model built as the method builds it, its
pipeline, and whether a method (variant) uses keypoint tokens."""

from __future__ import annotations


def method_uses_kcl(method) -> bool:
    """Keypoint tokens are on for the methods that put them in their prompts: SP-Ctrl (unless its
    variant or options turn them off) and ControlNet's ``kcl`` variant (Table 2 "+ KCL")."""
    kcl = getattr(method, "kcl", None)
    return kcl is not None and bool(getattr(kcl, "enabled", True))


def build_spctrl(method, sd):
    """A fresh SP-Ctrl ControlNet from the UNet, with the SPR settings of ``method.options``
    (variant applied) — built by the method itself, so training and generation agree."""
    from spbench.errors import SpbenchError

    if method.checkpoint:
        raise SpbenchError("spbench train starts SP-Ctrl from the UNet: drop --checkpoint (to continue a training run use --resume)")
    return method.untrained_model(sd)


def spctrl_pipeline(sd, model, scheduler: str):
    from spbench.models.spctrl import spctrl_pipeline as make

    return make(sd, model, scheduler)
