"""Scoring a run's images with HumanSD's CLIP similarity (:mod:`spbench.metrics.humansd_clip`):
the CLIP of ``models.humansd_clip`` (default HumanSD's ``openai/clip-vit-base-patch16``; the
tiny CLIP for tiny profiles) through :class:`spbench.metrics.clip_model.ClipScorer`."""

from __future__ import annotations

from spbench.metrics import humansd_protocol as hp
from spbench.metrics.clip_model import CONTEXT_LENGTH, ClipScorer
from spbench.metrics.evaluate import ScoringContext
from spbench.metrics.humansd_clip import HumanSDClipEvaluator


def score_humansd_clip(ctx: ScoringContext, rows: list[dict], progress=None) -> HumanSDClipEvaluator:
    """CLIPScore of every generated image against its sample's caption."""
    spec = hp.clip_model(ctx.config)
    evaluator = HumanSDClipEvaluator()
    evaluator.description = hp.description(
        ctx.config, model=spec,
        score="torchmetrics CLIPScore: max(100 * mean over images of cos(image, text), 0)",
        text="the sample's caption, as spbench's Human-Art prompt ends it with '.' (HumanSD: its mapping file's "
             "prompt); no keypoint tokens",
        truncation=f"texts truncated to {CONTEXT_LENGTH} tokens by the CLIP tokenizer (HumanSD: none)",
        images="the generated PNGs (uint8) through the CLIP processor (ViT-B/16: shorter side 224, bicubic, "
               "centre crop); HumanSD passed the decoded floats, cast to uint8 by truncation in transformers 4.19",
        spread="mean and sample std (ddof=1) of the score over k")
    if not rows:
        return evaluator
    size = int(ctx.config["evaluation"].get("clip_batch_size") or 32)
    scorer = ClipScorer.load(spec, device=ctx.device, batch_size=size)
    for batch, images in ctx.scored_batches(rows, size, progress, "scoring HumanSD CLIP"):
        texts = [ctx.samples[r["sample_id"]].prompt for r in batch]
        cos, truncated = scorer.cosines(images, texts)
        for r, t, c, cut in zip(batch, texts, cos, truncated, strict=True):
            evaluator.update(r["sample_id"], r["k"], c, t, cut)
    return evaluator
