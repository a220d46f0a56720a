"""CLIP-Score (paper §4.1): ``100 · max(cos(image, text), 0)`` with CLIP ViT-L/14, averaged per
category, then over categories. This module is the metric (its evaluator and grouping rule);
the text is :mod:`spbench.metrics.clip_text`'s, the model :mod:`spbench.metrics.clip_model`'s,
and :mod:`spbench.metrics.clip_scoring` runs it over a run.

Conventions (recorded in the result's ``evaluation.clip``):
- text (``evaluation.clip_text``): ``descriptions`` (default, the paper's), ``tokens`` or
  ``caption`` (:mod:`spbench.metrics.clip_text`);
- texts longer than CLIP's 77-token context are truncated by the tokenizer (keeping the end
  token) and counted in ``num_truncated_texts``;
- images: CLIP's own processor (ViT-L/14: shortest side to 224, bicubic, centre crop 224);
- grouping (``evaluation.clip_group_by``): ``auto`` (default) is the species (the first
  instance's category) for AP-10K and the scene for Human-Art (whose images are labelled by
  scene: its JSON calls that field ``category``; every instance is a ``person``), and for a
  schema file its ``clip_group_by`` (default the category); ``category``,
  ``scene`` and ``none`` (one group: the plain mean) can be set explicitly;
- per k and over all k pooled; spread: mean and sample std of the score over k.
"""

from __future__ import annotations

import statistics

from spbench.errors import SpbenchError
from spbench.metrics.base import Evaluator, spread_over_k
from spbench.schemas import SCHEMAS, get_schema

GROUP_RULES = ("auto", "category", "scene", "none")
GROUP_WORDS = {"category": "the sample's first instance category (AP-10K: species)",
               "scene": "the sample's scene (Human-Art's image category)", "none": "one group: the plain mean"}


def resolve_group_by(rule: str, schema_name: str) -> str:
    if rule not in GROUP_RULES:
        raise SpbenchError(f"unknown evaluation.clip_group_by {rule!r}: use one of {', '.join(GROUP_RULES)}")
    if rule == "auto":
        if schema_name in SCHEMAS:
            return "scene" if schema_name == "coco17" else "category"
        return get_schema(schema_name).clip_group_by or "category"  # a schema file's choice
    return rule


def group_of(sample, group_by: str) -> str:
    if group_by == "category":
        return sample.categories[0] if sample.categories else ""
    if group_by == "scene":
        return sample.scene
    return "all"


def clip_score_value(cosine: float) -> float:
    return 100.0 * max(float(cosine), 0.0)


class ClipScoreEvaluator(Evaluator):
    name = "clip"

    def __init__(self, group_by: str = "category"):
        self.group_by = group_by
        super().__init__(group_by=group_by)

    def update(self, sample_id: str, k: int, group: str, cosine: float, text: str = "",
               truncated: bool = False) -> None:
        """Record image k of a sample: its group and the cosine of its image and text features."""
        self._add(sample_id, k, {"group": str(group), "cosine": float(cosine), "text": text,
                                 "truncated": bool(truncated)})

    @staticmethod
    def _aggregate(entries: list[dict]) -> dict:
        groups: dict[str, list[float]] = {}
        for e in entries:
            groups.setdefault(e["group"], []).append(clip_score_value(e["cosine"]))
        per_group = {g: {"score": statistics.fmean(v), "num_images": len(v)} for g, v in sorted(groups.items())}
        return {
            "score": statistics.fmean(g["score"] for g in per_group.values()) if per_group else None,
            "score_image_mean": statistics.fmean(v for vs in groups.values() for v in vs) if groups else None,
            "num_images": len(entries),
            "num_categories": len(per_group),
            "per_category": per_group,
        }

    def compute(self) -> dict:
        """``{"score", "per_k": {"0": {"score", ...}}, "mean_over_k", "std_over_k", "per_category", ...}``;
        ``score`` is category-averaged, ``score_image_mean`` the plain mean over images."""
        entries = self.entries()
        result = self._aggregate(entries)
        by_k: dict[int, list[dict]] = {}
        for e in entries:
            by_k.setdefault(e["k"], []).append(e)
        result["per_k"] = {str(k): self._aggregate(by_k[k]) for k in sorted(by_k)}
        for v in result["per_k"].values():
            v.pop("per_category")
        result.update(spread_over_k(result["per_k"], "score"))
        result["group_by"] = self.group_by
        result["num_truncated_texts"] = sum(e["truncated"] for e in entries)
        return result

    def image_record(self, entry: dict) -> dict:
        return {"sample_id": entry["sample_id"], "k": entry["k"], "category": entry["group"],
                "score": clip_score_value(entry["cosine"]), "cosine": entry["cosine"], "text": entry["text"],
                "truncated": entry["truncated"]}
