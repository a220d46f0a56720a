"""The HumanSD protocol (``--protocol humansd``): which metrics it scores, their settings, and where
each rule was read. Plain data, no torch.

HumanSD (Ju et al., ICCV 2023; github IDEA-Research/HumanSD, read at commit c5db29d) scores
pose-guided generation on Human-Art with ``utils/metrics/`` driven by ``scripts/pose2img_metrics.py``
and ``utils/metrics/metrics.yaml``; Stable-Pose and GRPose reuse that code. Its metrics are
spbench metrics of their own, never mixed with the paper's (``pose``, ``fid``, ``clip``):

- ``humansd-pose`` (:mod:`spbench.metrics.humansd_pose`): AP / AR of the poses found on the
  generated image (no ground-truth boxes) against the condition pose, CAP (the cosine-similarity
  AP of ``utils/metrics/coco_similarity.py``) and PCE (people count error);
- ``humansd-fid`` and ``humansd-kid`` (:mod:`spbench.metrics.humansd_quality_scoring`): torchmetrics'
  FID on the 64-d Inception features and KID on the 2048-d ones, real images prepared as
  ``utils/metrics/quality_metrics.py`` prepares them;
- ``humansd-clip`` (:mod:`spbench.metrics.humansd_clip`): torchmetrics' CLIPScore with
  ``openai/clip-vit-base-patch16`` against the dataset's caption.

Under ``--protocol humansd`` the metric names ``pose``, ``fid`` and ``clip`` mean these; ``kid``
and ``humansd`` (all four) are names of their own (:func:`protocol_metrics`).

``evaluation.humansd.code``: ``official`` (default) reproduces the code as published, quirks
included; ``fixed`` corrects the four places where it departs from its own intent (listed in
:data:`FIXES`). Every record says which.
"""

from __future__ import annotations

from spbench.config import DEFAULTS as CONFIG_DEFAULTS
from spbench.errors import SpbenchError

PROTOCOL = "humansd"
SOURCE = ("github IDEA-Research/HumanSD at c5db29d: scripts/pose2img_metrics.py, utils/metrics/"
          "{pose_metrics,coco_similarity,quality_metrics,text_metrics}.py, utils/metrics/metrics.yaml")

POSE, FID, KID, CLIP = "humansd-pose", "humansd-fid", "humansd-kid", "humansd-clip"
METRICS = (POSE, FID, KID, CLIP)
# What a metric name means under --protocol humansd; ``humansd`` is all four.
UNDER_PROTOCOL = {"pose": POSE, "fid": FID, "kid": KID, "clip": CLIP}
GROUP = "humansd"
# Names that exist only as shorthands (they are not metrics under any other protocol).
SHORTHANDS = {"kid": (KID,), GROUP: METRICS}

# The scoring models of each metric (``models.*`` settings), for the checks before a run.
MODEL_ROLES = {POSE: ("pose", "detector"), FID: ("inception",), KID: ("inception",), CLIP: ("humansd_clip",)}

# HumanSD's CLIPSIM model (utils/metrics/metrics.yaml); ``models.humansd_clip`` overrides it, and
# the tiny profile uses the tiny CLIP.
CLIP_MODEL = "openai/clip-vit-base-patch16"

CODES = ("official", "fixed")
FIXES = {
    "cap_y": "CAP: the detection's y coordinates enter the similarity (official: coco_similarity.py "
             "line `yd=xd/np.sqrt((yd**2).sum())` puts the detection's normalised x in their place)",
    "gt_missing": "ground truth: unlabelled keypoints are (0, 0, 0) and left out of the box and area (official: "
                  "(-1, -1, 0), and the box and OKS area span them)",
    "pce_images": "PCE: every image of a batch counts (official: the first n images by index, n the number "
                  "of images with a condition person, from `range(len(gt_coco.imgToAnns))`)",
    "fid_real": "FID/KID: the real images enter the Inception as their own pixels (official: ImageNet-"
                "normalised, then x255 and cast to uint8 by torchmetrics' normalize=True, which wraps "
                "values outside 0..255)",
}

# evaluation.humansd (the defaults live in spbench.config.DEFAULTS):
# - code: official (the code as published) or fixed (FIXES corrected);
# - pose_batch: images per COCOeval. scripts/pose2img_metrics.py scores each batch of --batch_size
#   (default 10) images on its own and logs one row per batch; the headline is their mean (0: one
#   COCOeval over all images);
# - box_threshold: the person detector's score cut (Grounding-DINO's reference box threshold);
# - max_people: the most people kept per image (HigherHRNet's test_cfg max_num_people);
# - max_condition_people: condition people per image (HumanSDPoseBase max_person_num);
# - kid_subset_size: metrics.yaml's KernelInceptionDistance(subset_size=1000); kid_subsets:
#   torchmetrics' default 100; kid_seed: the subsets' seed (torchmetrics draws them unseeded).
DEFAULTS = dict(CONFIG_DEFAULTS["evaluation"]["humansd"])


def settings(config: dict) -> dict:
    """``evaluation.humansd`` of ``config`` over :data:`DEFAULTS` (records written before it
    existed get the defaults), checked."""
    given = ((config.get("evaluation") or {}).get("humansd") or {})
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise SpbenchError(f"unknown setting(s) evaluation.humansd.{', evaluation.humansd.'.join(unknown)} "
                           f"(known: {', '.join(DEFAULTS)})")
    out = {**DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    for key, rule in VALUE_RULES.items():
        if not rule[0](out[key]):
            raise SpbenchError(f"evaluation.humansd.{key} must be {rule[1]}, got {out[key]!r}; "
                               f"fix it with --set evaluation.humansd.{key}=VALUE")
    return out


def _count(v, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _fraction(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 1.0


VALUE_RULES = {
    "code": (lambda v: v in CODES, " or ".join(CODES)),
    "pose_batch": (lambda v: _count(v, 0), "an integer >= 0 (0: one COCOeval over all images)"),
    "box_threshold": (_fraction, "a number in [0, 1)"),
    "max_people": (lambda v: _count(v, 1), "an integer >= 1"),
    "max_condition_people": (lambda v: _count(v, 1), "an integer >= 1"),
    "kid_subset_size": (lambda v: _count(v, 2), "an integer >= 2"),
    "kid_subsets": (lambda v: _count(v, 1), "an integer >= 1"),
    "kid_seed": (lambda v: _count(v, 0), "an integer >= 0"),
}


SCHEMA = "coco17"


def check_schema(config: dict) -> None:
    """HumanSD's pose metrics are defined on COCO's 17 body keypoints (Human-Art's): a run of
    another keypoint schema stops here, before anything is generated."""
    schema = (config.get("dataset") or {}).get("schema")
    if schema is not None and schema != SCHEMA:
        raise SpbenchError(f"the HumanSD protocol's pose metric scores COCO's 17 body keypoints (Human-Art); this run's "
                           f"keypoint schema is {schema!r}: use --dataset humanart (or sample-humanart), or "
                           f"--metrics fid,kid,clip")


def clip_model(config: dict) -> str:
    """``models.humansd_clip``, else the tiny CLIP for tiny profiles and HumanSD's model otherwise."""
    spec = (config.get("models") or {}).get("humansd_clip")
    if spec:
        return spec
    return "tiny://clip" if (config.get("profile") or {}).get("tiny") else CLIP_MODEL


def expand(names: list[str]) -> list[str]:
    """The shorthands ``kid`` and ``humansd`` replaced by the metrics they name (order kept, no repeats)."""
    out: list[str] = []
    for name in names:
        for m in SHORTHANDS.get(name, (name,)):
            if m not in out:
                out.append(m)
    return out


def protocol_metrics(names: list[str], protocol: str) -> list[str]:
    """The metrics to score: under ``humansd``, ``pose``, ``fid``, ``clip`` and ``kid`` are
    HumanSD's; shorthands expand under any protocol."""
    names = expand(names)
    if protocol != PROTOCOL:
        return names
    out: list[str] = []
    for name in names:
        m = UNDER_PROTOCOL.get(name, name)
        if m not in out:
            out.append(m)
    return out


def description(config: dict, **extra) -> dict:
    """What every HumanSD metric records about its protocol (``evaluation.<metric>``)."""
    s = settings(config)
    out = {"protocol": PROTOCOL, "source": SOURCE, "code": s["code"], "settings": s}
    if s["code"] == "fixed":
        out["fixes"] = list(FIXES.values())
    out.update(extra)
    return out
