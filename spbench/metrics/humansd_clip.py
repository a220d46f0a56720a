"""HumanSD's CLIP similarity (``utils/metrics/text_metrics.py``): torchmetrics' ``CLIPScore`` with
``openai/clip-vit-base-patch16``, each generated image against its sample's caption.

torchmetrics' CLIPScore: per image ``100 * cos(image features, text features)``, averaged, and
the average clamped at 0 (``max(mean, 0)``; the paper's CLIP-Score clamps each image instead).
HumanSD logs the score of each batch; over equal batches their mean is this mean, up to the clamp.
"""

from __future__ import annotations

import statistics

from spbench.metrics.base import Evaluator, spread_over_k
from spbench.metrics.humansd_protocol import CLIP


def clip_score(cosines: list[float]) -> float | None:
    """torchmetrics' CLIPScore of a set of images: ``max(100 * mean(cos), 0)`` (None for no image)."""
    return max(100.0 * statistics.fmean(cosines), 0.0) if cosines else None


class HumanSDClipEvaluator(Evaluator):
    name = CLIP

    def __init__(self, name: str | None = None):
        if name is not None:
            self.name = name  # stablepose-clip: the same score on Stable-Pose's texts
        super().__init__()

    def update(self, sample_id: str, k: int, cosine: float, text: str = "", truncated: bool = False) -> None:
        self._add(sample_id, k, {"cosine": float(cosine), "text": text, "truncated": bool(truncated)})

    def compute(self) -> dict:
        """``{"score", "per_k", "mean_over_k", "std_over_k", "num_images", "num_truncated_texts"}``."""
        entries = self.entries()
        by_k: dict[int, list[float]] = {}
        for e in entries:
            by_k.setdefault(e["k"], []).append(e["cosine"])
        result = {"score": clip_score([e["cosine"] for e in entries]), "num_images": len(entries)}
        result["per_k"] = {str(k): {"score": clip_score(v), "num_images": len(v)} for k, v in sorted(by_k.items())}
        result.update(spread_over_k(result["per_k"], "score"))
        result["num_truncated_texts"] = sum(e["truncated"] for e in entries)
        return result

    def bootstrap_data(self) -> dict:
        """The score resampled over prompts: the mean of 100·cos over the drawn prompts' images,
        clamped at 0 as the headline is."""
        from spbench.metrics.bootstrap import DATA_FORMAT

        return {"format": DATA_FORMAT, "metric": self.name, "key": "score", "kind": "grouped_mean", "group_by": "all",
                "floor": 0.0, "images": [{"sample_id": e["sample_id"], "k": e["k"], "group": "all",
                                          "value": 100.0 * e["cosine"]} for e in self.entries()]}

    def image_record(self, entry: dict) -> dict:
        return {"sample_id": entry["sample_id"], "k": entry["k"], "cosine": entry["cosine"],
                "score": 100.0 * entry["cosine"], "text": entry["text"], "truncated": entry["truncated"]}
