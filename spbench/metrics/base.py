"""The shape every metric shares: reset / update / compute, plus a picklable state.

Distributed runs score on every rank, then gather the states (``accelerate.utils.gather_object``)
and merge them; a metric's ``compute()`` on merged states must equal one process that saw
everything. States are plain dicts of lists, numbers and strings, so they pickle and JSON-dump.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Evaluator(ABC):
    name: str = "evaluator"

    @abstractmethod
    def reset(self) -> None:
        """Forget everything seen so far."""

    @abstractmethod
    def update(self, *args, **kwargs) -> None:
        """Record one scored item (the arguments are metric-specific)."""

    @abstractmethod
    def compute(self) -> dict:
        """The aggregate result over everything recorded (and merged)."""

    @abstractmethod
    def state(self) -> dict:
        """What this evaluator recorded, as plain picklable data."""

    @abstractmethod
    def merge(self, states: list[dict]) -> "Evaluator":
        """Add other evaluators' states to this one; returns self."""

    def sync(self) -> "Evaluator":
        """Replace this rank's state by the union over all ranks (no-op in a single process)."""
        from accelerate.state import PartialState

        if PartialState().num_processes <= 1:
            return self
        from accelerate.utils import gather_object

        states = gather_object([self.state()])
        self.reset()
        return self.merge(states)


def spread_over_k(per_k: dict[str, dict], key: str) -> dict:
    """Mean and sample standard deviation (ddof=1) of ``per_k[*][key]`` over the sample index k:
    how much a metric moves between the k images of each prompt. None where undefined."""
    import statistics

    values = [v[key] for v in per_k.values() if v.get(key) is not None]
    return {
        "mean_over_k": statistics.fmean(values) if values else None,
        "std_over_k": statistics.stdev(values) if len(values) > 1 else None,
    }
