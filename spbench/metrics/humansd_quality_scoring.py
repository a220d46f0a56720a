"""Scoring a run's images with HumanSD's FID and KID (``utils/metrics/quality_metrics.py``):
each process extracts the features of its generated images as written (canvas size; the
Inception resizes them to 299); the main process adds the real images' features
(:mod:`spbench.metrics.humansd_reference`). FID: torchmetrics' formula on the 64-d features
(:class:`spbench.metrics.fid.FidEvaluator`'s streamed moments); KID: :mod:`spbench.metrics.humansd_kid`.

Stable-Pose's version (``stablepose-fid``, ``stablepose-kid``; its ``eval_quality.py``): the
generated images resized to 299 and prepared as the real ones
(:func:`spbench.metrics.humansd_inception.resized_generated_pixels`), FID and KID per scene and
averaged over scenes (:mod:`spbench.metrics.humansd_scenes`), KID subsets of 200, printed x100."""

from __future__ import annotations

from spbench.errors import SpbenchError
from spbench.metrics import humansd_protocol as hp
from spbench.metrics.evaluate import ScoringContext
from spbench.metrics.fid import FidEvaluator
from spbench.metrics.fid_moments import Moments
from spbench.metrics.humansd_inception import (FID_FEATURE, KID_FEATURE, REAL_WORDS, load_extractor,
                                               resized_generated_features)
from spbench.metrics.humansd_kid import KidEvaluator
from spbench.metrics.humansd_reference import reference_features
from spbench.metrics.humansd_scenes import SceneFidEvaluator, SceneKidEvaluator


class HumanSDFidEvaluator(FidEvaluator):
    name = hp.FID


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


GENERATED_WORDS = {
    "as written": "the PNGs as written (canvas size; HumanSD: the decoded 512x512 images x255, truncated)",
    "resized": {"official": "Resize(299) shorter side (PIL bilinear), ToTensor, Normalize(ImageNet), then x255 cast to "
                            "uint8 with wrap-around, as the real images but without the crop (Stable-Pose's "
                            "eval_quality.py, on the saved 512x512 images)",
                "fixed": "Resize(299) shorter side (PIL bilinear), the pixels as uint8"},
}


def _generated_words(family: hp.Family, code: str) -> str:
    words = GENERATED_WORDS[family.generated]
    return words if isinstance(words, str) else words[code]


def _description(ctx: ScoringContext, extractor, code: str, family: hp.Family = hp.HUMANSD, **extra) -> dict:
    tiny = extractor.name == "tiny-inception"
    if family.pose_drop_last:
        extra.setdefault("images", f"every image of the run ({family.label}'s script never generates the at most 3 "
                                   "images of a last partial batch of 4)")
    if family.by_scene:
        extra.setdefault("scenes", "per scene (the sample's scene; Human-Art: its category), each against the real "
                                   "images of that scene, then the mean over the scenes with a value; every scene's "
                                   "value and counts are in the result's per_scene")
    return hp.description(
        ctx.config, family, model=ctx.config["models"].get("inception"),
        features=(f"{extractor.num_features} (tiny random CNN: stands in for Inception layer {extractor.feature})"
                  if tiny else f"Inception layer {extractor.feature} ({extractor.num_features}-d)"),
        weights=extractor.weights,
        resize="inside the extractor: TensorFlow-1-compatible bilinear to 299x299 (torch-fidelity), uint8 input",
        generated_images=_generated_words(family, code),
        reference_images=f"every real image of the split: {REAL_WORDS[code]}",
        **extra)


def _generated(ctx, evaluator, extractor, rows, progress, label, family: hp.Family = hp.HUMANSD, code: str = "official") -> None:
    size = int(ctx.config["evaluation"].get("fid_batch_size") or 32)
    for batch, images in ctx.scored_batches(rows, size, progress, label):
        for r, im in zip(batch, images):
            w, h = r["canvas"]["width"], r["canvas"]["height"]
            if im.size != (w, h):
                raise SpbenchError(f"{r['file']}: image is {im.size[0]}x{im.size[1]} but its canvas is {w}x{h}")
        features = resized_generated_features(extractor, images, code) if family.generated == "resized" else extractor(images)
        evaluator.update([(r["sample_id"], r["k"]) for r in batch], features)


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
                             subset_size=s["kid_subset_size"], seed=s["kid_seed"], scale=hp.HUMANSD.kid_scale)
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


def _scene_labels(ctx: ScoringContext) -> tuple[dict[str, str], list[str]]:
    """The scene of each sample, and of each real image in the reference features' order (the split's)."""
    scenes = {sample_id: s.scene for sample_id, s in ctx.samples.items()}
    return scenes, list(scenes.values())


def score_stablepose_fid(ctx: ScoringContext, rows: list[dict], progress=None) -> SceneFidEvaluator:
    """FID (64-d) per scene, the scene's generated images against its real images, then the mean."""
    family = hp.STABLE_POSE
    code = hp.settings(ctx.config, family)["code"]
    extractor = load_extractor(ctx.config["models"].get("inception"), FID_FEATURE, ctx.device)
    scenes, reference_scenes = _scene_labels(ctx)
    evaluator = SceneFidEvaluator(extractor.name, extractor.num_features, scenes, name=family.fid)
    evaluator.description = _description(
        ctx, extractor, code, family, formula="per scene, torchmetrics FrechetInceptionDistance(feature=64): "
        "|mu1-mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2), covariances with n-1; the mean over scenes",
        spread="mean and sample std (ddof=1) over k of the scene-mean FID")
    _generated(ctx, evaluator, extractor, rows, progress, "scoring Stable-Pose FID", family, code)
    if _is_main_process():
        features, settings = _reference(ctx, evaluator, extractor, code, progress)
        evaluator.set_scene_reference(features, reference_scenes, settings)
    return evaluator


def score_stablepose_kid(ctx: ScoringContext, rows: list[dict], progress=None) -> SceneKidEvaluator:
    """KID (2048-d, subsets of 200) per scene, then the mean over the scenes that have one; x100."""
    family = hp.STABLE_POSE
    s = hp.settings(ctx.config, family)
    extractor = load_extractor(ctx.config["models"].get("inception"), KID_FEATURE, ctx.device)
    scenes, reference_scenes = _scene_labels(ctx)
    evaluator = SceneKidEvaluator(extractor.name, extractor.num_features, scenes, subsets=s["kid_subsets"],
                                  subset_size=s["kid_subset_size"], seed=s["kid_seed"], scale=family.kid_scale,
                                  name=family.kid)
    evaluator.description = _description(
        ctx, extractor, s["code"], family,
        formula=f"per scene, torchmetrics KernelInceptionDistance: unbiased MMD^2, kernel (x.y/d + 1)^3, "
                f"{s['kid_subsets']} subsets of {s['kid_subset_size']}, seeded {s['kid_seed']}; a scene with no more "
                f"generated images than {s['kid_subset_size']} (or fewer real ones) has none; the mean over scenes",
        scale=f"{family.kid_key} = {family.kid_scale} x kid (GRPose's README: KID x100 for Human-Art)",
        spread="mean and sample std (ddof=1) over k of the scene-mean KID")
    _generated(ctx, evaluator, extractor, rows, progress, "scoring Stable-Pose KID", family, s["code"])
    if _is_main_process():
        features, settings = _reference(ctx, evaluator, extractor, s["code"], progress)
        evaluator.set_scene_reference(features, reference_scenes, settings)
    return evaluator
