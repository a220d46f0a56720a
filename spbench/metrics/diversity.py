"""Diversity of the k images of each prompt (the SP-Ctrl paper claims sparse pose keeps it, but
shows it only in figures). This module is the metric (its evaluator); the models are
:mod:`spbench.metrics.diversity_lpips` and :mod:`spbench.metrics.diversity_dino`, the Vendi score
:mod:`spbench.metrics.diversity_vendi`, and :mod:`spbench.metrics.diversity_scoring` runs it over a run.

Per prompt (sample), over its k images:
- ``lpips``: the mean LPIPS distance over its k(k-1)/2 pairs of images (the field's usual
  diversity measure; 0 when the images are identical);
- ``vendi``: the Vendi score of their DINOv2 embeddings under the cosine kernel: the effective
  number of distinct images, from 1 (all alike) to k.

Each is averaged over the prompts with at least two images (``lpips``, ``vendi``), with the
sample standard deviation over prompts beside it. Both are higher-is-more-diverse. Diversity is
not accuracy: a method can be diverse by ignoring its condition, so read it beside pose AP.

State: one entry per image (its embedding, and its LPIPS distance to each image of its prompt
with a smaller k), so states from several processes merge, and a prompt's value is computed
once all its images are in.
"""

from __future__ import annotations

import statistics

import numpy as np

from spbench.errors import SpbenchError
from spbench.metrics.base import Evaluator
from spbench.metrics.bootstrap import DATA_FORMAT
from spbench.metrics.diversity_vendi import vendi_score


def _stdev(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


class DiversityEvaluator(Evaluator):
    name = "diversity"

    def __init__(self, lpips: str = "", embedding: str = ""):
        super().__init__(lpips=lpips, embedding=embedding)

    def update(self, sample_id: str, k: int, embedding, lpips_to: dict[int, float] | None = None) -> None:
        """Record image k of a prompt: its embedding and its LPIPS distance to the images of the
        same prompt with a smaller k (``{k': distance}``; each pair is recorded once, on its larger k)."""
        distances = {}
        for other, d in (lpips_to or {}).items():
            if int(other) >= int(k):
                raise SpbenchError(f"diversity: sample {sample_id} image {k}: a pair is recorded on its larger k, "
                                   f"got a distance to image {other}")
            distances[str(int(other))] = float(d)
        self._add(sample_id, k, {"embedding": [float(v) for v in np.asarray(embedding, dtype=np.float64).ravel()],
                                 "lpips": distances})

    def update_prompt(self, sample_id: str, ks: list[int], embeddings, pair_distances: dict[tuple[int, int], float]) -> None:
        """Record every image of a prompt: ``embeddings[i]`` is image ``ks[i]``'s, and
        ``pair_distances[(a, b)]`` the LPIPS distance of images a < b."""
        for i, k in enumerate(ks):
            self.update(sample_id, k, embeddings[i], {a: d for (a, b), d in pair_distances.items() if b == k})

    # -- results -------------------------------------------------------------------------------

    def _prompts(self) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = {}
        for e in self.entries():  # sorted by (sample_id, k)
            groups.setdefault(e["sample_id"], []).append(e)
        return groups

    @staticmethod
    def _prompt_value(sample_id: str, entries: list[dict]) -> dict:
        ks = [e["k"] for e in entries]
        pairs = {(int(a), e["k"]): d for e in entries for a, d in e["lpips"].items()}
        expected = {(a, b) for i, a in enumerate(ks) for b in ks[i + 1:]}
        if len(ks) < 2:
            return {"k": len(ks), "lpips": None, "vendi": None}
        missing = sorted(expected - pairs.keys())
        if missing:
            a, b = missing[0]
            raise SpbenchError(f"diversity: sample {sample_id} has images {a} and {b} but no LPIPS distance between "
                               "them (a prompt's images must be scored together); evaluate the run again")
        return {"k": len(ks), "lpips": statistics.fmean(pairs[p] for p in sorted(expected)),
                "vendi": vendi_score(np.array([e["embedding"] for e in entries]))}

    def compute(self) -> dict:
        """``{"lpips", "vendi"`` (means over prompts with >= 2 images), ``"lpips_std", "vendi_std"``
        (sample std over those prompts), counts, ``"per_prompt": {sample_id: {"k", "lpips", "vendi"}}}``."""
        per_prompt = {sid: self._prompt_value(sid, entries) for sid, entries in self._prompts().items()}
        scored = [v for v in per_prompt.values() if v["lpips"] is not None]
        lpips = [v["lpips"] for v in scored]
        vendi = [v["vendi"] for v in scored]
        result = {
            "lpips": statistics.fmean(lpips) if lpips else None,
            "vendi": statistics.fmean(vendi) if vendi else None,
            "lpips_std": _stdev(lpips),
            "vendi_std": _stdev(vendi),
            "num_prompts": len(scored),
            "num_prompts_single_image": len(per_prompt) - len(scored),
            "num_images": sum(v["k"] for v in per_prompt.values()),
            "images_per_prompt": sorted({v["k"] for v in per_prompt.values()}),
            "per_prompt": per_prompt,
        }
        if not scored and per_prompt:
            result["note"] = "every prompt has a single image: diversity needs at least two (generation.images_per_prompt)"
        return result

    def bootstrap_data(self) -> dict | str:
        """How the headline (mean LPIPS over prompts) is resampled over prompts
        (:mod:`spbench.metrics.bootstrap`): a plain mean of each prompt's value; or why it cannot be."""
        per_prompt = {sid: self._prompt_value(sid, entries) for sid, entries in self._prompts().items()}
        images = [{"sample_id": sid, "k": 0, "group": "all", "value": v["lpips"]}
                  for sid, v in per_prompt.items() if v["lpips"] is not None]
        if not images:
            return "no prompt has two images: diversity is undefined"
        return {"format": DATA_FORMAT, "metric": self.name, "key": "lpips", "kind": "grouped_mean",
                "group_by": "none", "images": images}

    def records(self) -> list[dict]:
        """Per image: its LPIPS distance to each other image of its prompt, their mean, and the
        prompt's values (``prompt_lpips``, ``prompt_vendi``)."""
        rows = []
        for sid, entries in self._prompts().items():
            value = self._prompt_value(sid, entries)
            pairs = {(int(a), e["k"]): d for e in entries for a, d in e["lpips"].items()}
            for e in entries:
                to = {str(other["k"]): pairs.get((min(e["k"], other["k"]), max(e["k"], other["k"])))
                      for other in entries if other["k"] != e["k"]}
                known = [d for d in to.values() if d is not None]
                rows.append({"sample_id": sid, "k": e["k"], "lpips_to": to,
                             "lpips_mean": statistics.fmean(known) if known else None,
                             "prompt_lpips": value["lpips"], "prompt_vendi": value["vendi"]})
        return rows
