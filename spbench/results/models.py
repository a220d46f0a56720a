"""Which weights a number came from: every model of a run by resolved path or hub id, fingerprinted.

A model setting is ``tiny://<name>`` (built in-process), ``oracle`` or ``perturbed-oracle[:SEED]``
(diagnostic stand-ins), a
local file or folder, or a hub id. The record gets, for each:

- a local file or folder: its absolute path and a fingerprint of its weight files;
- a hub id found in the local hub cache: the id, the snapshot's commit hash and path, and the
  fingerprint of the snapshot's weight files;
- anything else: the id, with ``"resolved": null``.

The fingerprint is ``sha256:`` over, per weight file in path order, its relative path, its size,
its first and its last MiB — seconds for a multi-GB checkpoint, and any re-save, truncation or
swapped file changes it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from spbench.metrics.model_specs import is_diagnostic_model
from spbench.registry import is_tiny_spec
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".pkl", ".msgpack", ".h5", ".onnx", ".npz")
CHUNK = 1 << 20


def is_tiny(spec) -> bool:
    return is_tiny_spec(spec)


def weight_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    out = []
    for root, dirs, files in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / f for f in sorted(files) if f.lower().endswith(WEIGHT_SUFFIXES)]
    return out


def fingerprint(path: str | os.PathLike) -> dict:
    """``{"fingerprint": "sha256:…", "files": n, "bytes": total}`` of a weights file or folder."""
    path = Path(path)
    h = hashlib.sha256()
    files = weight_files(path)
    total = 0
    for f in files:
        size = f.stat().st_size
        total += size
        rel = f.name if path.is_file() else f.relative_to(path).as_posix()
        h.update(f"{rel}\0{size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(CHUNK))
            if size > CHUNK:
                fh.seek(max(CHUNK, size - CHUNK))
                h.update(fh.read(CHUNK))
    return {"fingerprint": "sha256:" + h.hexdigest() if files else None, "files": len(files), "bytes": total}


def _hub_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of a hub id (never downloads), or None."""
    if repo_id.count("/") != 1 or repo_id.startswith(("/", ".", "~")):
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None


def _inception_file(spec: str) -> Path | None:
    """torch-fidelity's named Inception weights in torch's hub cache (spbench.metrics.fid)."""
    try:
        from spbench.metrics.fid_inception import INCEPTION_FILE, INCEPTION_NAME
    except Exception:
        return None
    if spec != INCEPTION_NAME:
        return None
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    return path if path.is_file() else None


def model_identity(spec) -> dict:
    """What the record says about one model setting (see the module docstring)."""
    if spec is None:
        return {"id": None}
    if isinstance(spec, dict):  # a pose model spec with settings
        spec = spec.get("model") or spec.get("name")
    spec = os.fspath(spec)
    if is_tiny(spec):
        return {"id": spec, "tiny": True}
    if is_diagnostic_model(spec):
        return {"id": spec, "diagnostic": True}
    local = Path(spec).expanduser()
    if local.exists():
        return {"id": spec, "path": str(local.resolve()), **fingerprint(local)}
    snapshot = _hub_snapshot(spec)
    if snapshot is not None:
        return {"id": spec, "hub_commit": snapshot.name, "path": str(snapshot), **fingerprint(snapshot)}
    inception = _inception_file(spec)
    if inception is not None:
        return {"id": spec, "path": str(inception), **fingerprint(inception)}
    return {"id": spec, "resolved": None}


def _model_like(value) -> bool:
    """Whether a method identity's value names a model (not a sentence such as "initialised from the UNet")."""
    if not isinstance(value, str) or not value or " " in value:
        return False
    return is_tiny(value) or is_diagnostic_model(value) or os.path.exists(os.path.expanduser(value)) or value.count("/") == 1


def generation_weights(method_identity: dict) -> dict:
    """Identity of every model named by a method's ``identity()`` (one level of nesting followed)."""
    out = {}
    for role, value in (method_identity or {}).items():
        if isinstance(value, dict):
            for sub, v in value.items():
                if _model_like(v):
                    out[f"{role}.{sub}"] = model_identity(v)
        elif _model_like(value):
            out[role] = model_identity(value)
    return out


# -- the pose model's head ------------------------------------------------------------------------

AP10K_EXPERT = 3  # ViTPose++ experts: 0 COCO, 1 AIC, 2 MPII, 3 AP-10K, 4 APT-36K, 5 COCO-WholeBody
HUMAN_WORDS = ("ear", "wrist", "ankle")  # in a COCO head's labels, never in AP-10K's


def _model_config(spec: str) -> dict | None:
    import json

    local = Path(spec).expanduser()
    path = local / "config.json" if local.is_dir() else None
    if path is None and not local.exists():
        snapshot = _hub_snapshot(spec)
        path = snapshot / "config.json" if snapshot is not None else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pose_head_problem(spec, dataset_index, schema: str) -> str | None:
    """Why Pose mAP of ``schema`` images cannot be scored by this pose model, read from its
    config.json (the same conditions under which the pose model itself only warns), or None.

    AP-10K needs a head that predicts AP-10K keypoints: the hub's ViTPose++ conversions keep only
    the COCO (human) head, whose outputs on animals decode into human keypoints in COCO order;
    and a ViTPose++ backbone must route through its AP-10K expert."""
    if schema != "ap10k" or not isinstance(spec, str) or is_tiny(spec) or is_diagnostic_model(spec):
        return None
    config = _model_config(spec)
    if config is None:
        return None
    labels = " ".join(str(v).lower() for v in (config.get("id2label") or {}).values())
    if any(w in labels for w in HUMAN_WORDS):
        return (f"pose model {spec} has a human (COCO) keypoint head, not AP-10K's: its Pose mAP on AP-10K "
                "is not a result (convert the paper's ViTPose++ with `spbench convert vitpose … --head ap10k`)")
    experts = int((config.get("backbone_config") or {}).get("num_experts") or 1)
    index = dataset_index if dataset_index is not None else config.get("head_dataset_index")
    if experts > 1 and index is not None and int(index) != AP10K_EXPERT:
        return (f"pose model {spec} scored AP-10K through ViTPose++ expert {index}, not the AP-10K expert "
                f"({AP10K_EXPERT}): set models.pose_dataset_index={AP10K_EXPERT}")
    return None
