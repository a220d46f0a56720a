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


def unique_entries(entries: list[dict]) -> list[dict]:
    """Entries sorted by (sample_id, k); a repeated pair counts once (accelerate pads the last
    batch of a split with repeats, so gathered states can hold duplicates)."""
    seen: dict[tuple[str, int], dict] = {}
    for e in entries:
        seen.setdefault((e["sample_id"], e["k"]), e)
    return [seen[key] for key in sorted(seen)]


# Percent values are rounded to this many decimals (far below any reported precision).
AP_DECIMALS = 10


def coco_ap(gt, dt, iou_type: str, img_ids: list[int], use_categories: bool, kpt_sigmas=None) -> dict:
    """AP, AP50, AP75 in percent from pycocotools' COCOeval over ``img_ids`` (None: undefined)."""
    import contextlib
    import io

    import numpy as np
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, dt, iouType=iou_type)
        if kpt_sigmas is not None:
            ev.params.kpt_oks_sigmas = np.array(kpt_sigmas)
        ev.params.imgIds = img_ids
        ev.params.useCats = int(use_categories)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # Rounded: pycocotools' tp / (tp + fp + eps) makes a perfect single match 0.99999...98.
    return {key: None if v < 0 else round(float(v) * 100.0, AP_DECIMALS)
            for key, v in zip(("AP", "AP50", "AP75"), ev.stats[:3])}
