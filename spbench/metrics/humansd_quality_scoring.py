"""Scoring a run's images with HumanSD's FID and KID (``utils/metrics/quality_metrics.py``):
each process extracts the features of its generated images as written (canvas size; the
Inception resizes them to 299); the main process adds the real images' features
(:mod:`spbench.metrics.humansd_reference`). FID: torchmetrics' formula on the 64-d features
(:class:`spbench.metrics.fid.FidEvaluator`'s streamed moments); KID: :mod:`spbench.metrics.humansd_kid`."""

from __future__ import annotations

from spbench.errors import SpbenchError
from spbench.metrics import humansd_protocol as hp
from spbench.metrics.evaluate import ScoringContext
from spbench.metrics.fid import FidEvaluator
from spbench.metrics.fid_moments import Moments
from spbench.metrics.humansd_inception import FID_FEATURE, KID_FEATURE, REAL_WORDS, load_extractor
from spbench.metrics.humansd_kid import KidEvaluator
from spbench.metrics.humansd_reference import reference_features


class HumanSDFidEvaluator(FidEvaluator):
    name = hp.FID


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _description(ctx: ScoringContext, extractor, code: str, **extra) -> dict:
    tiny = extractor.name == "tiny-inception"
    return hp.description(
        ctx.config, model=ctx.config["models"].get("inception"),
        features=(f"{extractor.num_features} (tiny random CNN: stands in for Inception layer {extractor.feature})"
                  if tiny else f"Inception layer {extractor.feature} ({extractor.num_features}-d)"),
        weights=extractor.weights,
        resize="inside the extractor: TensorFlow-1-compatible bilinear to 299x299 (torch-fidelity), uint8 input",
        generated_images="the PNGs as written (canvas size; HumanSD: the decoded 512x512 images x255, truncated)",
        reference_images=f"every real image of the split: {REAL_WORDS[code]}",
        **extra)


def _generated(ctx, evaluator, extractor, rows, progress, label) -> None:
    size = int(ctx.config["evaluation"].get("fid_batch_size") or 32)
    for batch, images in ctx.scored_batches(rows, size, progress, label):
        for r, im in zip(batch, images):
            w, h = r["canvas"]["width"], r["canvas"]["height"]
            if im.size != (w, h):
                raise SpbenchError(f"{r['file']}: image is {im.size[0]}x{im.size[1]} but its canvas is {w}x{h}")
        evaluator.update([(r["sample_id"], r["k"]) for r in batch], extractor(images))


def _reference(ctx, evaluator, extractor, code, progress):
    size = int(ctx.config["evaluation"].get("fid_batch_size") or 32)
    features, settings, path, reused = reference_features(ctx, extractor, code, size, progress)
    evaluator.description["reference_cache"] = f"{path} ({'reused' if reused else 'written'})"
    return features, settings


def score_humansd_fid(ctx: ScoringContext, rows: list[dict], progress=None) -> HumanSDFidEvaluator:
    """FID on Inception's 64-d features, generated images against the split's real images."""
    code = hp.settings(ctx.config)["code"]
    extractor = load_extractor(ctx.config["models"].get("inception"), FID_FEATURE, ctx.device)
    evaluator = HumanSDFidEvaluator(extractor.name, extractor.num_features)
    evaluator.description = _description(
        ctx, extractor, code, formula="torchmetrics FrechetInceptionDistance(feature=64): "
        "|mu1-mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2), covariances with n-1",
        spread="mean and sample std (ddof=1) of FID over k")
    _generated(ctx, evaluator, extractor, rows, progress, "scoring HumanSD FID")
    if _is_main_process():
        features, settings = _reference(ctx, evaluator, extractor, code, progress)
        moments = Moments(extractor.num_features)
        moments.add(features)
        evaluator.set_reference(moments, settings)
    return evaluator


def score_humansd_kid(ctx: ScoringContext, rows: list[dict], progress=None) -> KidEvaluator:
    """KID on Inception's 2048-d features, generated images against the split's real images."""
    s = hp.settings(ctx.config)
    extractor = load_extractor(ctx.config["models"].get("inception"), KID_FEATURE, ctx.device)
    evaluator = KidEvaluator(extractor.name, extractor.num_features, subsets=s["kid_subsets"],
                             subset_size=s["kid_subset_size"], seed=s["kid_seed"])
    evaluator.description = _description(
        ctx, extractor, s["code"],
        formula=f"torchmetrics KernelInceptionDistance: unbiased MMD^2, kernel (x.y/d + 1)^3, {s['kid_subsets']} "
                f"subsets of {s['kid_subset_size']} (fewer when there are fewer images), seeded {s['kid_seed']}; "
                "mean and population std over subsets",
        scale="kid_x10 = 10 x kid (HumanSD's README reports KID x10)",
        spread="mean and sample std (ddof=1) of KID over k")
    _generated(ctx, evaluator, extractor, rows, progress, "scoring HumanSD KID")
    if _is_main_process():
        features, settings = _reference(ctx, evaluator, extractor, s["code"], progress)
        evaluator.set_reference(features, settings)
    return evaluator
