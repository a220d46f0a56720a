"""The evaluator base every metric builds on: it owns the state, merging, reset and the per-image
records (mmpose's ``BaseMetric`` — ``process`` fills ``results``, ``compute_metrics`` reads them —
and torchmetrics' ``add_state`` / ``merge_state`` are the models).

A metric's evaluator records one *entry* per scored image, keyed by ``(sample_id, k)``, with
:meth:`Evaluator._add` from its ``update``, and computes from :meth:`Evaluator.entries`. A metric
whose state also holds sums over images (FID's feature moments) adds them through
``_extra_state`` / ``_merge_extra`` and sets ``sums_images``.

Repeated ``(sample_id, k)`` entries, one rule for every metric: the first recorded counts and a
repeat is dropped (accelerate pads the last batch of a split with repeats, so a rank, or the
states gathered from several, can hold one image twice). A metric that ``sums_images`` cannot
drop a repeat that arrives inside another rank's sums, so merging one is an error.

Distributed runs score on every rank, then gather the states (``accelerate.utils.gather_object``)
and merge them; ``compute()`` on merged states must equal one process that saw everything.
States are plain dicts of lists, numbers and strings, so they pickle and JSON-dump.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from spbench.errors import SpbenchError


class Evaluator(ABC):
    name: str = "evaluator"
    # True when the state holds sums over images (see the module doc): a repeat cannot be dropped.
    sums_images: bool = False
    # What the scoring function records about how the metric was computed (result.json's
    # ``evaluation.<metric>``): model, frame, rules, ...
    description: dict

    def __init__(self, **settings) -> None:
        """``settings``: what two states must share to be merged (schema, protocol, grouping, ...)."""
        self.settings = dict(settings)
        self.description = {}
        self.reset()

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything seen so far (the description stays)."""
        self._entries: dict[tuple[str, int], dict] = {}

    def _add(self, sample_id: str, k: int, entry: dict) -> bool:
        """Record the entry of image k of a sample; False (and nothing recorded) for a repeat."""
        key = (str(sample_id), int(k))
        if key in self._entries:
            return False
        self._entries[key] = {"sample_id": key[0], "k": key[1], **entry}
        return True

    def entries(self) -> list[dict]:
        """The recorded entries, sorted by (sample_id, k), each image once."""
        return [self._entries[key] for key in sorted(self._entries)]

    def _extra_state(self) -> dict:
        """State besides the entries, as plain data (none unless the metric sums images)."""
        return {}

    def _merge_extra(self, state: dict) -> None:
        """Add another rank's extra state to this one."""

    def state(self) -> dict:
        """What this evaluator recorded, as plain picklable data."""
        return {"metric": self.name, "settings": dict(self.settings), "entries": self.entries(), **self._extra_state()}

    def merge(self, states: list[dict]) -> "Evaluator":
        """Add other evaluators' states to this one; returns self."""
        for st in states:
            theirs = st.get("settings") or {}
            differ = sorted(key for key in {**self.settings, **theirs} if theirs.get(key) != self.settings.get(key))
            if differ:
                raise SpbenchError(f"cannot merge {self.name} states made with "
                                   + ", ".join(f"{key}={theirs.get(key)!r}" for key in differ) + " into one made with "
                                   + ", ".join(f"{key}={self.settings.get(key)!r}" for key in differ))
            repeats = sorted({(str(e["sample_id"]), int(e["k"])) for e in st["entries"]} & self._entries.keys())
            if repeats and self.sums_images:
                s, k = repeats[0]
                raise SpbenchError(f"{self.name}: image {s} k={k} was scored on two processes; "
                                   "its sums cannot drop the repeat, so it would count twice")
            for e in st["entries"]:
                self._add(e["sample_id"], e["k"], {key: v for key, v in e.items() if key not in ("sample_id", "k")})
            self._merge_extra(st)
        return self

    # -- results -------------------------------------------------------------------------------

    @abstractmethod
    def update(self, *args, **kwargs) -> None:
        """Record scored images (the arguments are metric-specific)."""

    @abstractmethod
    def compute(self) -> dict:
        """The aggregate result over everything recorded (and merged)."""

    def image_record(self, entry: dict) -> dict:
        """The per-image record (``per_image.jsonl``) of one entry."""
        return {"sample_id": entry["sample_id"], "k": entry["k"]}

    def records(self) -> list[dict]:
        """Per-image records, one per (sample_id, k), sorted."""
        return [self.image_record(e) for e in self.entries()]

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
