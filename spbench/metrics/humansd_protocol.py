"""The HumanSD family of protocols (``--protocol humansd``, ``--protocol stable-pose``): which
metrics each scores, their settings, and where each rule was read. Plain data, no torch.

HumanSD (Ju et al., ICCV 2023; github IDEA-Research/HumanSD, read at commit c5db29d) scores
pose-guided generation on Human-Art with ``utils/metrics/`` driven by ``scripts/pose2img_metrics.py``
and ``utils/metrics/metrics.yaml``. Its metrics are spbench metrics of their own, never mixed
with the paper's (``pose``, ``fid``, ``clip``):

- ``humansd-pose`` (:mod:`spbench.metrics.humansd_pose`): AP / AR of the poses found on the
  generated image (no ground-truth boxes) against the condition pose, CAP (the cosine-similarity
  AP of ``utils/metrics/coco_similarity.py``) and PCE (people count error);
- ``humansd-fid`` and ``humansd-kid`` (:mod:`spbench.metrics.humansd_quality_scoring`): torchmetrics'
  FID on the 64-d Inception features and KID on the 2048-d ones, real images prepared as
  ``utils/metrics/quality_metrics.py`` prepares them;
- ``humansd-clip`` (:mod:`spbench.metrics.humansd_clip`): torchmetrics' CLIPScore with
  ``openai/clip-vit-base-patch16`` against the dataset's caption.

Stable-Pose (Wang et al., NeurIPS 2024; github ai-med/StablePose, read at 9d746ed) changed how that
code is driven, and GRPose (Yin et al., AAAI 2025; github XiangchenYin/GRPose, read at 590d1ae)
ships Stable-Pose's version unchanged; their published numbers are of that version, so it is a
protocol of its own, ``stable-pose``, with metrics ``stablepose-pose``, ``-fid``, ``-kid``,
``-clip`` (:data:`STABLE_POSE`; what differs: :class:`Family`).

Under either protocol the metric names ``pose``, ``fid``, ``clip`` and ``kid`` mean that
protocol's, and ``humansd`` / ``stablepose`` name all four (:func:`protocol_metrics`).

``evaluation.humansd.code`` (``evaluation.stable_pose.code``): ``official`` (default) reproduces
the code as published, quirks included; ``fixed`` corrects the places where it departs from its
own intent (listed in :data:`FIXES`). Every record says which.
"""

from __future__ import annotations

from dataclasses import dataclass

from spbench.config import DEFAULTS as CONFIG_DEFAULTS
from spbench.errors import SpbenchError


@dataclass(frozen=True)
class Family:
    """One evaluation code of the HumanSD family: its ``--protocol``, metric names, settings section
    and what it does differently (the metrics themselves are one code: AP/CAP/PCE, FID, KID, CLIPSIM)."""

    protocol: str          # --protocol NAME
    prefix: str            # metric names "<prefix>-pose", "-fid", "-kid", "-clip"; the shorthand of all four
    section: str           # its settings: evaluation.<section>
    label: str             # how tables and records name it
    source: str            # where its rules were read
    # The last, partial batch of images is not scored (a DataLoader with drop_last=True).
    pose_drop_last: bool
    # FID and KID per scene (a sample's ``scene``: Human-Art's category), each against the real
    # images of that scene, then averaged over scenes (a scene without a value left out).
    by_scene: bool
    # How a generated image reaches the Inception: "as written" (the PNG; HumanSD: the decoded
    # image x255) or "resized" (Resize(299) shorter side, then prepared as the real images are).
    generated: str
    clip_text_chars: int | None  # texts cut to this many characters before CLIP (None: whole)
    kid_scale: int               # the published tables' KID multiplier (kid_x<scale>)

    @property
    def pose(self) -> str:
        return f"{self.prefix}-pose"

    @property
    def fid(self) -> str:
        return f"{self.prefix}-fid"

    @property
    def kid(self) -> str:
        return f"{self.prefix}-kid"

    @property
    def clip(self) -> str:
        return f"{self.prefix}-clip"

    @property
    def metrics(self) -> tuple[str, str, str, str]:
        return (self.pose, self.fid, self.kid, self.clip)

    @property
    def kid_key(self) -> str:
        return f"kid_x{self.kid_scale}"

    @property
    def under_protocol(self) -> dict[str, str]:
        """What ``pose``, ``fid``, ``kid`` and ``clip`` mean under this protocol."""
        return {"pose": self.pose, "fid": self.fid, "kid": self.kid, "clip": self.clip}


HUMANSD = Family(
    protocol="humansd", prefix="humansd", section="humansd", label="HumanSD",
    source=("github IDEA-Research/HumanSD at c5db29d: scripts/pose2img_metrics.py, utils/metrics/"
            "{pose_metrics,coco_similarity,quality_metrics,text_metrics}.py, utils/metrics/metrics.yaml"),
    pose_drop_last=False, by_scene=False, generated="as written", clip_text_chars=None, kid_scale=10)
# Stable-Pose's eval_pose.py: batches of 4 from a DataLoader with drop_last=True, no augmentation
# (phase: eval); its text_metrics.py cuts texts to 77 characters. eval_quality.py: FID (64-d) and
# KID (subsets of 200) per scene list of val_jsons/ (19 scenes, 250 validation images each), the
# generated images Resize(299) + ToTensor + Normalize as the real ones (no crop), KID None for a
# scene with no more generated images than the subset size, each averaged over the scenes with a
# value. GRPose's README: KID is printed x100 for Human-Art.
STABLE_POSE = Family(
    protocol="stable-pose", prefix="stablepose", section="stable_pose", label="Stable-Pose",
    source=("github ai-med/StablePose at 9d746ed: eval_pose.py, eval_quality.py, utils/metrics/"
            "{pose_metrics,coco_similarity,quality_metrics,text_metrics}.py, utils/metrics/metrics.yaml, val_jsons/ "
            "(the same files in github XiangchenYin/GRPose at 590d1ae)"),
    pose_drop_last=True, by_scene=True, generated="resized", clip_text_chars=77, kid_scale=100)
FAMILIES = {f.protocol: f for f in (HUMANSD, STABLE_POSE)}

# HumanSD's own names (kept: the protocol as first implemented).
PROTOCOL, SOURCE = HUMANSD.protocol, HUMANSD.source
POSE, FID, KID, CLIP = HUMANSD.metrics
METRICS = HUMANSD.metrics
GROUP = HUMANSD.prefix
# Names that exist only as shorthands: ``humansd`` and ``stablepose`` (each family's four), and
# ``kid`` (HumanSD's, or the protocol's under a family protocol).
SHORTHANDS = {"kid": (KID,), **{f.prefix: f.metrics for f in FAMILIES.values()}}

# The scoring models of each kind of metric (``models.*`` settings), for the checks before a run.
ROLES = {"pose": ("pose", "detector"), "fid": ("inception",), "kid": ("inception",), "clip": ("humansd_clip",)}
MODEL_ROLES = {f"{f.prefix}-{kind}": roles for f in FAMILIES.values() for kind, roles in ROLES.items()}


def family_of(metric: str) -> Family | None:
    """The family whose metric ``metric`` is (``humansd-pose@oracle`` too), or None."""
    base = metric.partition("@")[0]
    return next((f for f in FAMILIES.values() if base in f.metrics), None)


def kind_of(metric: str) -> str:
    """``pose``, ``fid``, ``kid`` or ``clip`` of a family's metric."""
    return metric.partition("@")[0].rpartition("-")[2]


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
    "fid_real": "FID/KID: the real images (and Stable-Pose's resized generated ones) enter the Inception as "
                "their own pixels (official: ImageNet-normalised, then x255 and cast to uint8 by torchmetrics' "
                "normalize=True, which wraps values outside 0..255)",
}

# evaluation.humansd and evaluation.stable_pose (the defaults live in spbench.config.DEFAULTS):
# - code: official (the code as published) or fixed (FIXES corrected);
# - pose_batch: images per COCOeval. scripts/pose2img_metrics.py scores each batch of --batch_size
#   (default 10; Stable-Pose's eval_pose.py: 4) images on its own and logs one row per batch; the
#   headline is their mean (0: one COCOeval over all images);
# - box_threshold: the person detector's score cut (Grounding-DINO's reference box threshold);
# - max_people: the most people kept per image (HigherHRNet's test_cfg max_num_people);
# - max_condition_people: condition people per image (HumanSDPoseBase max_person_num);
# - kid_subset_size: metrics.yaml's KernelInceptionDistance(subset_size=1000; Stable-Pose: 200);
#   kid_subsets: torchmetrics' default 100; kid_seed: the subsets' seed (torchmetrics draws them
#   unseeded).
DEFAULTS = dict(CONFIG_DEFAULTS["evaluation"][HUMANSD.section])


def defaults(family: Family = HUMANSD) -> dict:
    return dict(CONFIG_DEFAULTS["evaluation"][family.section])


def settings(config: dict, family: Family = HUMANSD) -> dict:
    """``evaluation.<family.section>`` of ``config`` over its defaults (records written before it
    existed get the defaults), checked."""
    base = defaults(family)
    given = ((config.get("evaluation") or {}).get(family.section) or {})
    where = f"evaluation.{family.section}"
    unknown = sorted(set(given) - set(base))
    if unknown:
        raise SpbenchError(f"unknown setting(s) {where}.{(', ' + where + '.').join(unknown)} "
                           f"(known: {', '.join(base)})")
    out = {**base, **{k: v for k, v in given.items() if v is not None}}
    for key, rule in VALUE_RULES.items():
        if not rule[0](out[key]):
            raise SpbenchError(f"{where}.{key} must be {rule[1]}, got {out[key]!r}; "
                               f"fix it with --set {where}.{key}=VALUE")
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
    """The HumanSD family's pose metrics are defined on COCO's 17 body keypoints (Human-Art's): a run of
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
    """The shorthands ``kid``, ``humansd`` and ``stablepose`` replaced by the metrics they name
    (order kept, no repeats)."""
    out: list[str] = []
    for name in names:
        for m in SHORTHANDS.get(name, (name,)):
            if m not in out:
                out.append(m)
    return out


def protocol_metrics(names: list[str], protocol: str) -> list[str]:
    """The metrics to score: under a family's protocol (``humansd``, ``stable-pose``), ``pose``,
    ``fid``, ``clip`` and ``kid`` are that family's; shorthands expand under any protocol."""
    family = FAMILIES.get(protocol)
    out: list[str] = []
    for name in names:
        for m in ((family.under_protocol[name],) if family and name in family.under_protocol else expand([name])):
            if m not in out:
                out.append(m)
    return out


def description(config: dict, family: Family = HUMANSD, **extra) -> dict:
    """What every metric of a family records about its protocol (``evaluation.<metric>``)."""
    s = settings(config, family)
    out = {"protocol": family.protocol, "source": family.source, "code": s["code"], "settings": s}
    if s["code"] == "fixed":
        out["fixes"] = list(FIXES.values())
    out.update(extra)
    return out
