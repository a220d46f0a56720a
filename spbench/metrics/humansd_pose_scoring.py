"""Scoring a run's images with HumanSD's pose accuracy (:mod:`spbench.metrics.humansd_pose`), as
HumanSD's code runs it (``humansd-pose``) or Stable-Pose's (``stablepose-pose``: batches of 4, the
last partial batch dropped).

HumanSD finds the people on a generated image bottom-up, with mmpose's HigherHRNet-W48 (UDP,
trained on Human-Art), which does not run here. The closest path through transformers is
top-down on detected people: ``models.detector`` (Grounding-DINO, prompted ``"person."``) finds
the boxes, the ``evaluation.humansd.box_threshold`` cut and the ``max_people`` best kept (no box
NMS, as HumanSD runs its pose model with ``pose_nms_thr=1``), and ``models.pose`` (ViTPose; the
paper profile's ViTPose-H trained on Human-Art) estimates each person on the canvas-sized image
(transformers' crop with padding 1.25, flip test); a pose's score is the box score times the mean
of its keypoint scores above 0.2 (mmpose's top-down rescoring).

Diagnostics: a ``--pose-model`` of ``oracle`` or ``perturbed-oracle[:SEED]`` skips the detector
and returns the condition people themselves (moved by the perturbed oracle's seeded offsets), one
detection each: AP 100 and PCE 0 for the oracle. ``models.detector`` set to an oracle gives the
pose model the condition boxes instead of detected ones.
"""

from __future__ import annotations

import numpy as np

from spbench.canvas import CanvasTransform
from spbench.data.records import Instance, Sample
from spbench.errors import SpbenchError
from spbench.metrics import humansd_protocol as hp
from spbench.metrics.detection_models import load_detector, prompt_text
from spbench.metrics.evaluate import ScoringContext
from spbench.metrics.humansd_pose import PERSON, HumanSDPoseEvaluator
from spbench.metrics.model_specs import is_diagnostic_model
from spbench.metrics.pose import detection_score
from spbench.metrics.pose_models import OraclePoseModel, PerturbedOraclePoseModel, load_pose_model


def score_humansd_pose(ctx: ScoringContext, rows: list[dict], progress=None) -> HumanSDPoseEvaluator:
    """AP/AR, CAP and PCE of every generated image (HumanSD's protocol)."""
    return score_family_pose(ctx, rows, progress, hp.HUMANSD)


def score_stablepose_pose(ctx: ScoringContext, rows: list[dict], progress=None) -> HumanSDPoseEvaluator:
    """AP/AR, CAP and PCE of every generated image (Stable-Pose's version of HumanSD's protocol)."""
    return score_family_pose(ctx, rows, progress, hp.STABLE_POSE)


def score_family_pose(ctx: ScoringContext, rows: list[dict], progress, family: hp.Family) -> HumanSDPoseEvaluator:
    s = hp.settings(ctx.config, family)
    override = ctx.overrides.get("pose_model")
    pose_spec = override or ctx.config["models"]["pose"]
    index = None if override else ctx.config["models"].get("pose_dataset_index")
    det_spec = ctx.config["models"].get("detector")
    schema = next(iter(ctx.samples.values())).schema
    oracle_pose = is_diagnostic_model(pose_spec)
    evaluator = HumanSDPoseEvaluator(code=s["code"], pose_batch=s["pose_batch"],
                                     max_condition_people=s["max_condition_people"], schema=schema,
                                     diagnostic=oracle_pose or is_diagnostic_model(det_spec),
                                     drop_last=family.pose_drop_last, name=family.pose)
    batch = "one COCOeval over all images" if s["pose_batch"] == 0 else \
        f"each k's images in split order in batches of {s['pose_batch']}, one COCOeval each; values are means over batches" \
        + ("; the last batch of each k, when partial, is not scored (DataLoader drop_last=True)" if family.pose_drop_last else "")
    evaluator.description = hp.description(
        ctx.config, family,
        model=pose_spec, dataset_index=index,
        detector=None if oracle_pose else det_spec,
        people=("the condition people themselves (diagnostic pose model; no detector)" if oracle_pose else
                f"{det_spec} prompted 'person.', boxes scored > {s['box_threshold']}, the {s['max_people']} best, no NMS; "
                f"then {pose_spec} top-down on each box (transformers crop, padding 1.25, flip test)"),
        score="box score x mean keypoint score above 0.2",
        substitution=f"{family.label}: mmpose HigherHRNet-W48 UDP bottom-up (Human-Art checkpoint); here a person "
                     "detector and a top-down pose model (HigherHRNet does not run here)",
        ground_truth=f"the first {s['max_condition_people']} condition people with a keypoint at x > 0, canvas frame",
        frame=f"canvas ({family.label}: the 512x512 generated image, its condition cropped to it)",
        evaluation="pycocotools COCOeval keypoints (COCO sigmas, maxDets 20) for AP/AR; the same with HumanSD's "
                   "weighted cosine similarity for CAP; PCE = mean |condition people - detections|",
        batches=batch, images="every k",
        spread="mean and sample std (ddof=1) of AP over k",
    )
    if not oracle_pose:
        evaluator.description["extra_models"] = {"detector": det_spec}
    if evaluator.settings["diagnostic"]:
        evaluator.description["diagnostic"] = True
    if not rows:
        return evaluator
    order = {sample_id: i for i, sample_id in enumerate(ctx.samples)}
    pose_model = load_pose_model(pose_spec, dataset_index=index, device=ctx.device)
    detector = None
    if not oracle_pose:
        if det_spec is None:
            raise SpbenchError(f"the {family.label} protocol finds people with models.detector: set it "
                               "(e.g. IDEA-Research/grounding-dino-tiny)")
        detector = load_detector(det_spec, device=ctx.device, box_threshold=s["box_threshold"],
                                 max_detections=s["max_people"], batch_size=int(ctx.config["evaluation"].get("det_batch_size") or 8)) \
            if not is_diagnostic_model(det_spec) else load_detector(det_spec)
    size = int(ctx.config["evaluation"].get("pose_batch_size") or 16)
    for chunk, images in ctx.scored_batches(rows, size, progress, f"scoring {family.label} pose"):
        samples = [ctx.samples[r["sample_id"]] for r in chunk]
        transforms = [CanvasTransform(**r["canvas"]) for r in chunk]
        if oracle_pose:
            found = _condition_people(pose_model, images, samples, transforms, s["max_condition_people"])
        else:
            found = _detected_people(detector, pose_model, images, samples, transforms, s["max_people"])
        for r, sample, t, dets in zip(chunk, samples, transforms, found, strict=True):
            evaluator.update(sample, t, r["k"], order[r["sample_id"]], dets)
    return evaluator


def _condition_people(model, images, samples, transforms, max_people: int) -> list[list[dict]]:
    """The (perturbed) oracle's poses of the condition people HumanSD's ground truth holds."""
    if not isinstance(model, (OraclePoseModel, PerturbedOraclePoseModel)):
        raise SpbenchError("the condition people come from an oracle pose model only")
    poses = model.predict(images, samples, transforms)
    out = []
    for s, per_sample in zip(samples, poses):
        dets = []
        for inst, pose in list(zip(s.instances, per_sample))[:max_people]:
            if inst.labelled:
                dets.append({"keypoints": pose, "score": detection_score(pose[:, 2])})
        out.append(dets)
    return out


def _detected_people(detector, pose_model, images, samples, transforms, max_people: int) -> list[list[dict]]:
    """People boxes from the detector (or an oracle detector's condition boxes), then the pose
    model top-down on each."""
    if hasattr(detector, "detect"):
        found = detector.detect([im.convert("RGB") for im in images], [prompt_text(PERSON)] * len(images))
    else:  # an oracle detector: the condition boxes, its scores
        found = []
        for per_image in detector.predict(images, samples, transforms):
            found.append((np.array([d["score"] for d in per_image], dtype=np.float64),
                          np.array([d["bbox"] for d in per_image], dtype=np.float64).reshape(-1, 4)))
    boxes = [(scores[:max_people], xywh[:max_people]) for scores, xywh in found]
    people = [_box_sample(s, t, b) for s, t, (_, b) in zip(samples, transforms, boxes)]
    identities = [CanvasTransform(t.width, t.height, 1.0, 1.0) for t in transforms]
    poses = pose_model.predict(images, people, identities)
    out = []
    for (scores, _), per_image in zip(boxes, poses):
        out.append([{"keypoints": p, "score": float(box_score) * detection_score(p[:, 2])}
                    for box_score, p in zip(scores, per_image)])
    return out


def _box_sample(sample: Sample, transform: CanvasTransform, boxes: np.ndarray) -> Sample:
    """A stand-in sample in the canvas frame whose instances are the detected boxes (the pose
    model's input for top-down estimation)."""
    n = len(sample.instances[0].keypoints) if sample.instances else 17
    instances = tuple(
        Instance(category=PERSON, bbox=tuple(float(v) for v in b), area=float(b[2] * b[3]),
                 keypoints=((0.0, 0.0, 0),) * n)
        for b in boxes)
    return Sample(sample_id=sample.sample_id, image_id=sample.image_id, file=sample.file, width=transform.width,
                  height=transform.height, schema=sample.schema, instances=instances, prompt_template="")
