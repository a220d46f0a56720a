"""Scoring a run's images with CLIP-Score (:mod:`spbench.metrics.clip_score`): every generated
image against its text (:mod:`spbench.metrics.clip_text`), by the CLIP model of
:mod:`spbench.metrics.clip_model`."""

from __future__ import annotations

from spbench.metrics.clip_model import CONTEXT_LENGTH, ClipScorer
from spbench.metrics.clip_score import GROUP_WORDS, ClipScoreEvaluator, group_of, resolve_group_by
from spbench.metrics.clip_text import TEXT_WORDS, check_text_rule, clip_text
from spbench.schemas import get_schema


def clip_settings(ctx) -> dict:
    ev = ctx.config.get("evaluation", {})
    return {
        "text": ctx.overrides.get("clip_text") or ev.get("clip_text") or "descriptions",
        "group_by": ctx.overrides.get("clip_group_by") or ev.get("clip_group_by") or "auto",
        "batch_size": int(ev.get("clip_batch_size") or 32),
    }


def score_clip(ctx, rows: list[dict], progress=None) -> ClipScoreEvaluator:
    """CLIP-Score of every generated image against its (keypoint-described) prompt."""
    settings = clip_settings(ctx)
    schema_name = next(iter(ctx.samples.values())).schema
    schema = get_schema(schema_name)
    check_text_rule(settings["text"])
    group_by = resolve_group_by(settings["group_by"], schema_name)
    spec = ctx.config["models"].get("clip")
    evaluator = ClipScoreEvaluator(group_by)
    evaluator.description = {
        "model": spec,
        "score": "100 * max(cos(image, text), 0) per image; mean per category, then over categories",
        "text": TEXT_WORDS[settings["text"]],
        "truncation": f"texts truncated to {CONTEXT_LENGTH} tokens by the CLIP tokenizer",
        "category": GROUP_WORDS[group_by] + (" (clip_group_by auto)" if settings["group_by"] == "auto" else ""),
        "images": "generated canvas images through CLIP's own image processor",
        "spread": "mean and sample std (ddof=1) of the score over k",
    }
    if not rows:
        return evaluator
    scorer = ClipScorer.load(spec, device=ctx.device, batch_size=settings["batch_size"])
    for batch, images in ctx.scored_batches(rows, settings["batch_size"], progress, "scoring CLIP"):
        samples = [ctx.samples[r["sample_id"]] for r in batch]
        texts = [clip_text(r["prompt"], schema, settings["text"], s.prompt) for r, s in zip(batch, samples)]
        cos, truncated = scorer.cosines(images, texts)
        for r, s, t, c, cut in zip(batch, samples, texts, cos, truncated, strict=True):
            evaluator.update(r["sample_id"], r["k"], group_of(s, group_by), c, t, cut)
    return evaluator
