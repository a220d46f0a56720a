"""Scoring a run's images with HumanSD's CLIP similarity (:mod:`spbench.metrics.humansd_clip`):
the CLIP of ``models.humansd_clip`` (default HumanSD's ``openai/clip-vit-base-patch16``; the
tiny CLIP for tiny profiles) through :class:`spbench.metrics.clip_model.ClipScorer`. Stable-Pose's
version (``stablepose-clip``) cuts each text to its first 77 characters first."""

from __future__ import annotations

from spbench.metrics import humansd_protocol as hp
from spbench.metrics.clip_model import CONTEXT_LENGTH, ClipScorer
from spbench.metrics.evaluate import ScoringContext
from spbench.metrics.humansd_clip import HumanSDClipEvaluator


def score_humansd_clip(ctx: ScoringContext, rows: list[dict], progress=None) -> HumanSDClipEvaluator:
    """CLIPScore of every generated image against its sample's caption."""
    return score_family_clip(ctx, rows, progress, hp.HUMANSD)


def score_stablepose_clip(ctx: ScoringContext, rows: list[dict], progress=None) -> HumanSDClipEvaluator:
    """CLIPScore of every generated image against the first 77 characters of its caption."""
    return score_family_clip(ctx, rows, progress, hp.STABLE_POSE)


def family_text(text: str, family: hp.Family) -> str:
    """The text a family's CLIP scores: Stable-Pose's ``text[:77]`` (characters, "in case text
    sequence is too long"), HumanSD's whole caption."""
    return text if family.clip_text_chars is None else text[: family.clip_text_chars]


def score_family_clip(ctx: ScoringContext, rows: list[dict], progress, family: hp.Family) -> HumanSDClipEvaluator:
    spec = hp.clip_model(ctx.config)
    evaluator = HumanSDClipEvaluator(name=family.clip)
    cut = (f"each text cut to its first {family.clip_text_chars} characters ({family.label}'s text_metrics.py), "
           if family.clip_text_chars else "")
    evaluator.description = hp.description(
        ctx.config, family, model=spec,
        score="torchmetrics CLIPScore: max(100 * mean over images of cos(image, text), 0)",
        text="the sample's caption, as spbench's Human-Art prompt ends it with '.' (HumanSD: its mapping file's "
             "prompt); no keypoint tokens",
        truncation=(f"{cut}texts truncated to {CONTEXT_LENGTH} tokens by the CLIP tokenizer ({family.label}: none)"
                    if not cut else f"{cut}through the CLIP tokenizer (77 characters stay within {CONTEXT_LENGTH} tokens)"),
        images="the generated PNGs (uint8) through the CLIP processor (ViT-B/16: shorter side 224, bicubic, "
               "centre crop); HumanSD passed the decoded floats, cast to uint8 by truncation in transformers 4.19",
        spread="mean and sample std (ddof=1) of the score over k")
    if family.pose_drop_last:
        evaluator.description["batches"] = (f"every image of the run; {family.label}'s script scores CLIPSIM per batch "
                                            "of 4 and never generates the (at most 3) images of a last partial batch")
    if not rows:
        return evaluator
    size = int(ctx.config["evaluation"].get("clip_batch_size") or 32)
    scorer = ClipScorer.load(spec, device=ctx.device, batch_size=size)
    for batch, images in ctx.scored_batches(rows, size, progress, f"scoring {family.label} CLIP"):
        texts = [family_text(ctx.samples[r["sample_id"]].prompt, family) for r in batch]
        cos, truncated = scorer.cosines(images, texts)
        for r, t, c, cut in zip(batch, texts, cos, truncated, strict=True):
            evaluator.update(r["sample_id"], r["k"], c, t, cut)
    return evaluator
