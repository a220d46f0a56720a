"""What a scoring model setting (``models.pose``, ``models.detector``, ``models.clip``,
``models.inception``) names: an oracle (``oracle``, ``perturbed-oracle[:SEED]``: stand-ins whose
score checks the metric), a tiny random model built in-process (``tiny://<name>``, for tests), or
weights (a hub id, a folder or a file)."""

from __future__ import annotations

from collections.abc import Callable

from spbench.errors import SpbenchError
from spbench.metrics.perturbed import is_perturbed, perturbed_seed

TINY_PREFIX = "tiny://"


def oracle_model(spec: str, oracle: Callable[[], object], perturbed: Callable[[int], object]):
    """``oracle()`` for ``oracle``, ``perturbed(seed)`` for ``perturbed-oracle[:SEED]``, else None."""
    if spec == "oracle":
        return oracle()
    seed = perturbed_seed(spec)
    return None if seed is None else perturbed(seed)


def is_tiny(spec: str, known: str, what: str) -> bool:
    """Whether ``spec`` names a tiny model; a tiny name other than ``known`` is an error."""
    if not spec.startswith(TINY_PREFIX):
        return False
    if spec != known:
        raise SpbenchError(f"unknown tiny {what} {spec!r}: use {known}")
    return True


DIAGNOSTIC_MODELS = ("oracle",)


def is_diagnostic_model(spec) -> bool:
    """``oracle`` or ``perturbed-oracle[:SEED]``: a stand-in whose score checks the metric."""
    if isinstance(spec, dict):
        spec = spec.get("model") or spec.get("name")
    return isinstance(spec, str) and (spec in DIAGNOSTIC_MODELS or is_perturbed(spec))
