"""What a scoring model setting (``models.pose``, ``models.detector``, ``models.clip``,
``models.inception``) names: an oracle (``oracle``, ``perturbed-oracle[:SEED]``: stand-ins whose
score checks the metric), a tiny random model built in-process (``tiny://<name>``, for tests), or
weights (a hub id, a folder or a file)."""

from __future__ import annotations

from collections.abc import Callable

from spbench.metrics.perturbed import is_perturbed, perturbed_seed
from spbench.registry import is_tiny_spec, tiny_builder


def oracle_model(spec: str, oracle: Callable[[], object], perturbed: Callable[[int], object]):
    """``oracle()`` for ``oracle``, ``perturbed(seed)`` for ``perturbed-oracle[:SEED]``, else None."""
    if spec == "oracle":
        return oracle()
    seed = perturbed_seed(spec)
    return None if seed is None else perturbed(seed)


def is_tiny(spec: str, known: str, what: str) -> bool:
    """Whether ``spec`` names a tiny model; a tiny name other than ``known`` is an error. Its
    builder is ``tiny_builder(spec)`` (the registry of tiny builders, :mod:`spbench.registry`)."""
    if not is_tiny_spec(spec):
        return False
    tiny_builder(spec, known, "unknown tiny " + what + " {spec!r}: use {known}")
    return True


DIAGNOSTIC_MODELS = ("oracle",)


def is_diagnostic_model(spec) -> bool:
    """``oracle`` or ``perturbed-oracle[:SEED]``: a stand-in whose score checks the metric."""
    if isinstance(spec, dict):
        spec = spec.get("model") or spec.get("name")
    return isinstance(spec, str) and (spec in DIAGNOSTIC_MODELS or is_perturbed(spec))
