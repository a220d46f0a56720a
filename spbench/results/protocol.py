"""The paper's protocol, and how a run's settings depart from it (plain data: no torch).

A record lists its departures (``"generation.steps=20 (paper: 50)"``); ``spbench table`` and the
report mark numbers from such records, since they are not comparable with the paper's.
"""

from __future__ import annotations

from spbench.config import DEFAULTS
from spbench.methods.registry import declared
from spbench.metrics.humansd_protocol import CLIP_MODEL, MODEL_ROLES
from spbench.registry import is_tiny_spec

# Generation settings of the paper's protocol (UniPC, 50 steps, CFG 7.5, scale 1, 3 per prompt,
# 512²): spbench's defaults are the paper's, so they are read from there, not written twice.
PAPER_GENERATION = {
    key: DEFAULTS["generation"][key]
    for key in ("steps", "guidance_scale", "conditioning_scale", "scheduler", "negative_prompt", "images_per_prompt", "canvas")
}
# Methods that generate nothing: only the canvas applies (the Real Image row is 1 image per prompt).
NO_GENERATION = {"real": ("canvas",)}
# Scoring model settings of each metric (the HumanSD family's: spbench.metrics.humansd_protocol).
METRIC_MODELS = {"pose": ("pose",), "clip": ("clip",), "fid": ("inception",), "det": ("detector",),
                 "diversity": ("lpips", "dino"), **MODEL_ROLES}


def _paper_models(schema: str | None) -> dict:
    """The paper profile's model settings (its pose model for ``schema``), or {} if unreadable."""
    try:
        from spbench.config import load_profile

        paper = load_profile("paper")
    except Exception:
        return {}
    models = dict(paper.get("models") or {})
    pose = (paper.get("pose_models") or {}).get(schema or "") or {}
    models["pose"] = pose.get("id")
    models["pose_dataset_index"] = pose.get("dataset_index")
    return models


def _is_hub_id(value) -> bool:
    return isinstance(value, str) and value.count("/") == 1 and not value.startswith(("/", ".", "~")) and "://" not in value


def departures(config: dict, method: str | None = None, metrics=(), pose_protocol: str | None = None) -> list[str]:
    """Settings of ``config`` that depart from the paper's protocol, one ``"key=value (paper: x)"``
    each. Models depart when they are tiny, or a hub id other than the paper profile's; a local
    folder is taken for the paper's model (its fingerprint is in the record to check it); pose
    scored under another protocol than the official one (``pose_protocol``) departs too."""
    out = []
    gen = config.get("generation") or {}
    keys = NO_GENERATION.get(method or "", tuple(PAPER_GENERATION))
    for key in keys:
        if key in gen and gen[key] != PAPER_GENERATION[key]:
            if isinstance(PAPER_GENERATION[key], str) and str(gen[key]).lower() == PAPER_GENERATION[key]:
                continue
            out.append(f"generation.{key}={gen[key]!r} (paper: {PAPER_GENERATION[key]!r})")
    dataset = config.get("dataset") or {}
    if dataset.get("schema_file"):  # a keypoint set of the user's own: not the paper's 17 keypoints
        out.append(f"dataset.schema={dataset.get('schema')} (schema file {dataset['schema_file']}; paper: ap10k / coco17)")
    models = config.get("models") or {}
    paper = _paper_models(dataset.get("schema"))
    # The models.<role> the method generates with: SD1.5's "base", or a newer base (SDXL, SD3, FLUX).
    base_role = "base" if not method or method in NO_GENERATION else declared(method, "base_model", "base")
    paper.setdefault("humansd_clip", CLIP_MODEL)  # HumanSD's CLIPSIM model when models.humansd_clip is unset
    scoring = [role for m in metrics for role in METRIC_MODELS.get(m.partition("@")[0], ())]
    roles = list(dict.fromkeys(([] if method in NO_GENERATION else [base_role]) + scoring))
    for role in roles:
        value = models.get(role)
        if role == base_role != "base" and value is not None:  # not SD1.5 at all: always a departure
            out.append(f"models.{role}={value} ({'tiny' if is_tiny_spec(value) else 'paper: models.base=' + str(paper.get('base'))})")
            continue
        if value is None or value == paper.get(role):
            continue
        if is_tiny_spec(value):
            out.append(f"models.{role}={value} (tiny)")
        elif _is_hub_id(value):
            out.append(f"models.{role}={value} (paper: {paper.get(role)})")
    if "pose" in metrics and models.get("pose") == paper.get("pose") and paper.get("pose") is not None \
            and models.get("pose_dataset_index") != paper.get("pose_dataset_index"):
        out.append(f"models.pose_dataset_index={models.get('pose_dataset_index')!r} (paper: {paper.get('pose_dataset_index')!r})")
    if "pose" in metrics and pose_protocol not in (None, "official"):
        out.append(f"evaluation.protocol={pose_protocol!r} (paper: 'official')")
    return out
