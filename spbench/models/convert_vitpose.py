"""Convert an mmpose ViTPose / ViTPose++ checkpoint (.pth) into a transformers ``VitPoseForPoseEstimation`` folder.

Two checkpoint layouts are read, told apart by their parameter names:

- ``vitpose``: the official ViTPose / ViTPose++ repository (mmpose 0.x, ``TopDown`` / ``TopDownMoE``):
  ``backbone.blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2,mlp.experts.E}``,
  ``backbone.last_norm``, ``keypoint_head.*`` and, for ViTPose++, ``associate_keypoint_heads.I.*``
  (the head of dataset I + 1). Its backbone adds ``pos_embed[1:] + pos_embed[0]``, as transformers does.
- ``mmpose``: mmpose 1.x (``TopdownPoseEstimator``, mmcls/mmpretrain ``VisionTransformer`` with
  ``with_cls_token=False``, e.g. the Human-Art ViTPose): ``backbone.layers.N.{ln1,attn.qkv,attn.proj,
  ln2,ffn.layers.0.0,ffn.layers.1}``, final ``backbone.ln1``, ``head.*``. Its patches get only
  ``pos_embed[-N:]``: a class-token row, if stored, is unused and is zeroed here.

Heads: the classic decoder (``deconv_layers.{0,1,3,4}`` + 1x1 ``final_layer``) or the simple one
(3x3 ``final_layer`` after ReLU and 4x bilinear upsampling). transformers' model holds one head, so
a ViTPose++ checkpoint keeps the head picked with ``head`` and its experts (score it with that
head's ``dataset_index``, also written to the config as ``head_dataset_index``).

The file is read with ``torch.load(weights_only=True)`` plus an allow-list of the numpy globals
that mmpose's checkpoint ``meta`` pickles; anything else is refused without being executed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from spbench.errors import SpbenchError

# ViTPose++: keypoint_head is dataset 0, associate_keypoint_heads.I is dataset I + 1.
VITPOSE_PLUS_DATASETS = {"coco": 0, "aic": 1, "mpii": 2, "ap10k": 3, "apt36k": 4, "wholebody": 5}
# Attention heads of the ViTPose backbones (S, B, L, H), keyed by (hidden size, layers): not in the weights.
KNOWN_NUM_HEADS = {(384, 12): 12, (768, 12): 12, (1024, 24): 16, (1280, 32): 16}
LAYER_NORM_EPS = 1e-6  # both layouts build their LayerNorms with eps=1e-6
SIMPLE_DECODER_SCALE = 4  # ViTPose's simple head: ReLU, 4x bilinear upsampling, 3x3 conv

_W = r"(weight|bias)"
_BACKBONE_RULES = {
    "vitpose": [
        (rf"patch_embed\.proj\.{_W}", r"embeddings.patch_embeddings.projection.\1"),
        (rf"blocks\.(\d+)\.norm1\.{_W}", r"encoder.layer.\1.layernorm_before.\2"),
        (rf"blocks\.(\d+)\.attn\.proj\.{_W}", r"encoder.layer.\1.attention.output.dense.\2"),
        (rf"blocks\.(\d+)\.norm2\.{_W}", r"encoder.layer.\1.layernorm_after.\2"),
        (rf"blocks\.(\d+)\.mlp\.fc([12])\.{_W}", r"encoder.layer.\1.mlp.fc\2.\3"),
        (rf"blocks\.(\d+)\.mlp\.experts\.(\d+)\.{_W}", r"encoder.layer.\1.mlp.experts.\2.\3"),
        (rf"last_norm\.{_W}", r"layernorm.\1"),
    ],
    "mmpose": [
        (rf"patch_embed\.projection\.{_W}", r"embeddings.patch_embeddings.projection.\1"),
        (rf"layers\.(\d+)\.ln1\.{_W}", r"encoder.layer.\1.layernorm_before.\2"),
        (rf"layers\.(\d+)\.attn\.proj\.{_W}", r"encoder.layer.\1.attention.output.dense.\2"),
        (rf"layers\.(\d+)\.ln2\.{_W}", r"encoder.layer.\1.layernorm_after.\2"),
        (rf"layers\.(\d+)\.ffn\.layers\.0\.0\.{_W}", r"encoder.layer.\1.mlp.fc1.\2"),
        (rf"layers\.(\d+)\.ffn\.layers\.1\.{_W}", r"encoder.layer.\1.mlp.fc2.\2"),
        (rf"ln1\.{_W}", r"layernorm.\1"),
    ],
}
_QKV = re.compile(rf"(?:blocks|layers)\.(\d+)\.attn\.qkv\.{_W}")
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_HEAD_RULES = {
    "classic": [
        (r"deconv_layers\.0\.weight", "deconv1.weight"),
        (rf"deconv_layers\.1\.{_BN}", r"batchnorm1.\1"),
        (r"deconv_layers\.3\.weight", "deconv2.weight"),
        (rf"deconv_layers\.4\.{_BN}", r"batchnorm2.\1"),
        (rf"final_layer\.{_W}", r"conv.\1"),
    ],
    "simple": [(rf"final_layer\.{_W}", r"conv.\1")],
}
# Stored but unused by the forward pass (mmpose 1.x drops data_preprocessor when publishing).
_IGNORED = re.compile(r"backbone\.cls_token|data_preprocessor\..*")


def _numpy_safe_globals() -> list:
    """Exactly what mmpose's ``meta`` pickles: arrays, their dtypes and numpy scalars.

    Rebuilding them calls only numpy constructors; their contents are built by the same
    restricted unpickler. Both spellings of the module are listed: numpy 1.x wrote
    ``numpy.core.multiarray``, numpy 2.x writes ``numpy._core.multiarray``.
    """
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    allowed: list = [np.ndarray, np.dtype]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [(multiarray._reconstruct, f"{module}._reconstruct"), (multiarray.scalar, f"{module}.scalar")]
    # A dtype is rebuilt as np.dtype(...) and then given its state, which needs its class allowed.
    scalar_types = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                    np.uint64, np.float16, np.float32, np.float64, np.str_, np.bytes_)
    allowed += [type(np.dtype(t)) for t in scalar_types]
    return allowed


def load_mmpose_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(state_dict, meta)`` of an mmpose .pth, read without unpickling anything but tensors and numpy data."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise SpbenchError(f"mmpose checkpoint {str(path)!r} not found: pass the .pth file of the pose model")
    with torch.serialization.safe_globals(_numpy_safe_globals()):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            refused = _refused_globals(path, str(e))
            if not refused:  # not a pickle spbench refused, but not a checkpoint either
                raise SpbenchError(f"cannot read {path} as a torch checkpoint: {_torch_reason(e)}") from None
            raise SpbenchError(
                f"refusing to load {path}: it pickles {', '.join(refused)}, which spbench does not unpickle "
                f"(it reads tensors, numpy arrays and plain Python data only); if you trust the file, "
                f"keep only its weights: torch.save({{'state_dict': ckpt['state_dict']}}, 'weights.pth')"
            ) from None
        except Exception as e:  # not a torch file, truncated, ...
            raise SpbenchError(f"cannot read {path} as a torch checkpoint: {_torch_reason(e)}") from None
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        state, meta = ckpt["state_dict"], ckpt.get("meta")
    elif isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state, meta = ckpt, None
    else:
        raise SpbenchError(f"{path} is not an mmpose checkpoint: expected a dict with a 'state_dict' of tensors")
    bad = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise SpbenchError(f"{path}: state_dict entries that are not tensors: {', '.join(map(str, bad[:5]))}")
    return state, (meta if isinstance(meta, dict) else {})


def _refused_globals(path: Path, message: str) -> list[str]:
    """Names of the pickled globals outside the allow-list, found without running the pickle."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # legacy (non-zip) file: read the name off torch's message
        names = []
    return sorted(set(names) | set(re.findall(r"GLOBAL ([\w.]+)", message)))


def _torch_reason(error) -> str:
    """The line of torch's (long, multi-line) load error that says what is wrong."""
    text = str(error).strip()
    m = re.search(r"WeightsUnpickler error: ([^\n]+)", text)
    return m.group(1).strip() if m else (text.splitlines()[0] if text else type(error).__name__)


# -- naming ---------------------------------------------------------------------------------------

def _layout(state: dict) -> str:
    if any(k.startswith("backbone.blocks.") for k in state):
        return "vitpose"
    if any(k.startswith("backbone.layers.") for k in state):
        return "mmpose"
    raise SpbenchError(
        "no ViTPose backbone in the checkpoint: expected backbone.blocks.* (ViTPose repository) or "
        f"backbone.layers.* (mmpose 1.x); first keys: {', '.join(list(state)[:5])}"
    )


def _heads(state: dict) -> dict[int, str]:
    """Dataset index -> key prefix of each keypoint head in the checkpoint."""
    heads = {}
    for prefix in ("keypoint_head.", "head."):
        if any(k.startswith(prefix) for k in state):
            heads[0] = prefix
    for k in state:
        m = re.match(r"associate_keypoint_heads\.(\d+)\.", k)
        if m:
            heads[int(m.group(1)) + 1] = m.group(0)
    if 0 not in heads:
        raise SpbenchError("no keypoint head in the checkpoint: expected keypoint_head.* or head.*")
    return dict(sorted(heads.items()))


def _pick_head(heads: dict[int, str], head, names: dict[str, int]) -> int:
    if len(heads) == 1:
        if head is not None and head not in (0, "0") and names.get(head) != 0:
            raise SpbenchError(f"the checkpoint has a single keypoint head ({heads[0][:-1]}): leave head unset")
        return 0
    label = {i: next((n for n, j in names.items() if j == i), str(i)) for i in heads}
    choices = ", ".join(f"{label[i]} ({i})" for i in heads)
    if head is None:
        raise SpbenchError(f"the checkpoint has {len(heads)} keypoint heads: pick one with head=NAME or INDEX ({choices})")
    if isinstance(head, str) and not head.isdigit():
        if head not in names:
            raise SpbenchError(f"unknown head {head!r}: use one of {', '.join(names)} or an index; the checkpoint has {choices}")
        index = names[head]
    else:
        index = int(head)
    if index not in heads:
        raise SpbenchError(f"head {head!r} (dataset index {index}) is not in the checkpoint, which has {choices}")
    return index


def _rename(key: str, rules) -> str | None:
    for pattern, target in rules:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, target, key)
    return None


def _position_embeddings(pos, layout: str, num_patches: int, image_size):
    """Rows for transformers, which adds ``pos[1:] + pos[0]`` to the patches."""
    import torch

    rows = pos.shape[1]
    if rows not in (num_patches, num_patches + 1):
        raise SpbenchError(
            f"pos_embed has {rows} positions but a {image_size[0]}x{image_size[1]} input has {num_patches} "
            f"patches: pass the image size (height, width) the model was trained at"
        )
    zero = torch.zeros_like(pos[:, :1])
    if rows == num_patches:
        return torch.cat([zero, pos], dim=1)
    if layout == "mmpose":  # the class-token row is never added to a patch
        return torch.cat([zero, pos[:, 1:]], dim=1)
    return pos.clone()


# -- conversion -----------------------------------------------------------------------------------

def convert_mmpose_vitpose(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    head: str | int | None = None,
    num_keypoints: int | None = None,
    image_size: tuple[int, int] = (256, 192),
    dataset_index_for: dict[str, int] | None = None,
    num_heads: int | None = None,
) -> dict:
    """Write ``out_dir`` (``config.json``, ``model.safetensors``, ``preprocessor_config.json``).

    ``head``: which keypoint head to keep when there are several (ViTPose++): a name from
    ``dataset_index_for`` (default :data:`VITPOSE_PLUS_DATASETS`, e.g. ``"ap10k"``) or a dataset
    index. ``num_keypoints``: if given, the kept head must predict that many. ``image_size``:
    (height, width) of the model input. ``num_heads``: attention heads, needed only for a backbone
    that is not ViTPose-S/B/L/H. Returns a summary of what was converted.
    """
    import torch
    from transformers import VitPoseForPoseEstimation, VitPoseImageProcessor

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SpbenchError(f"output folder {str(out)!r} exists and is not empty: choose a new folder")
    names = dict(dataset_index_for or VITPOSE_PLUS_DATASETS)
    state, meta = load_mmpose_checkpoint(checkpoint)
    layout = _layout(state)
    _check_cls_token(layout, meta)
    heads = _heads(state)
    index = _pick_head(heads, head, names)
    # Name the kept head only when the user did, or when the heads follow ViTPose++'s dataset order.
    head_name = head if isinstance(head, str) and not head.isdigit() else (
        next((n for n, i in names.items() if i == index), None) if len(heads) > 1 else None)
    arch = _architecture(state, layout, heads[index], (int(image_size[0]), int(image_size[1])), num_heads)
    if num_keypoints is not None and num_keypoints != arch["num_keypoints"]:
        raise SpbenchError(f"head {head_name or index} predicts {arch['num_keypoints']} keypoints, not {num_keypoints}")
    if arch["num_experts"] > 1 and index >= arch["num_experts"]:
        raise SpbenchError(f"head {head_name or index} has no expert: the backbone has {arch['num_experts']} experts")
    converted, unexpected, ignored, dropped = _rename_weights(state, layout, heads, index, arch)

    labels = _keypoint_names(meta, index, head_name, arch["num_keypoints"])
    config = _config(arch, labels, index)
    with torch.device("meta"):
        model = VitPoseForPoseEstimation(config)
    _check_keys(model.state_dict(), converted, unexpected)
    model.load_state_dict(converted, strict=True, assign=True)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    VitPoseImageProcessor(size={"height": arch["image_size"][0], "width": arch["image_size"][1]}).save_pretrained(out)
    return {
        "out_dir": str(out), "layout": layout, **arch, "head": head_name, "head_index": index,
        "dataset_index": index if arch["num_experts"] > 1 else None, "keypoint_names": labels,
        "dropped_heads": sorted(dropped), "ignored_keys": ignored,
        "parameters": sum(v.numel() for v in converted.values()),
    }


def _need(state: dict, key: str):
    if key not in state:
        raise SpbenchError(f"the checkpoint has no {key}: it is not a ViTPose checkpoint of a known layout")
    return state[key]


def _architecture(state: dict, layout: str, head_prefix: str, image_size: tuple[int, int], num_heads) -> dict:
    """Backbone and head sizes, read off the weights' shapes."""
    vitpose = layout == "vitpose"
    proj = _need(state, f"backbone.patch_embed.{'proj' if vitpose else 'projection'}.weight")
    hidden = proj.shape[0]
    blocks = "blocks" if vitpose else "layers"
    layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(rf"backbone\.{blocks}\.(\d+)\.", k)))
    mlp_width = _need(state, f"backbone.{blocks}.0.{'mlp.fc1' if vitpose else 'ffn.layers.0.0'}.weight").shape[0]
    if mlp_width % hidden:
        raise SpbenchError(f"MLP width {mlp_width} is not a multiple of the hidden size {hidden}")
    experts = [k for k in state if re.fullmatch(r"backbone\.blocks\.0\.mlp\.experts\.\d+\.weight", k)]
    if num_heads is None:
        num_heads = KNOWN_NUM_HEADS.get((hidden, layers))
        if num_heads is None:
            raise SpbenchError(f"unknown ViT (hidden size {hidden}, {layers} layers): pass its number of attention heads")
    if hidden % num_heads:
        raise SpbenchError(f"hidden size {hidden} is not divisible into {num_heads} attention heads")
    height, width = image_size
    return {
        "image_size": image_size, "patch_size": tuple(proj.shape[2:]), "num_channels": proj.shape[1],
        "hidden_size": hidden, "num_layers": layers, "num_attention_heads": num_heads,
        "mlp_ratio": mlp_width // hidden, "qkv_bias": f"backbone.{blocks}.0.attn.qkv.bias" in state,
        "num_experts": max(len(experts), 1),
        "part_features": state["backbone.blocks.0.mlp.experts.0.weight"].shape[0] if experts else 0,
        "num_patches": (height // proj.shape[2]) * (width // proj.shape[3]),
        "decoder": "classic" if f"{head_prefix}deconv_layers.0.weight" in state else "simple",
        "num_keypoints": _need(state, f"{head_prefix}final_layer.weight").shape[0],
    }


def _rename_weights(state: dict, layout: str, heads: dict[int, str], index: int, arch: dict):
    """transformers' names for the backbone and the kept head; the other heads are dropped."""
    head_prefix = heads[index]
    other_heads = tuple(p for p in heads.values() if p != head_prefix)
    backbone_rules, head_rules = _BACKBONE_RULES[layout], _HEAD_RULES[arch["decoder"]]
    converted, unexpected, ignored, dropped = {}, [], [], set()
    for key, value in state.items():
        sub = key[len("backbone."):] if key.startswith("backbone.") else None
        if key == "backbone.pos_embed":
            pos = _position_embeddings(value, layout, arch["num_patches"], arch["image_size"])
            converted["backbone.embeddings.position_embeddings"] = pos
        elif _IGNORED.fullmatch(key):
            ignored.append(key)
        elif key.startswith(head_prefix) and (target := _rename(key[len(head_prefix):], head_rules)):
            converted["head." + target] = value
        elif other_heads and key.startswith(other_heads):
            dropped.add(next(p for p in other_heads if key.startswith(p))[:-1])
        elif sub is not None and (m := _QKV.fullmatch(sub)):
            base = f"backbone.encoder.layer.{m.group(1)}.attention.attention"
            for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                converted[f"{base}.{name}.{m.group(2)}"] = part.clone()  # own storage, for safetensors
        elif sub is not None and (target := _rename(sub, backbone_rules)):
            converted["backbone." + target] = value
        else:
            unexpected.append(key)
    return converted, unexpected, ignored, dropped


def _config(arch: dict, labels: list[str] | None, index: int):
    from transformers import VitPoseBackboneConfig, VitPoseConfig

    backbone = VitPoseBackboneConfig(
        image_size=list(arch["image_size"]), patch_size=list(arch["patch_size"]), num_channels=arch["num_channels"],
        hidden_size=arch["hidden_size"], num_hidden_layers=arch["num_layers"],
        num_attention_heads=arch["num_attention_heads"], mlp_ratio=arch["mlp_ratio"], qkv_bias=arch["qkv_bias"],
        num_experts=arch["num_experts"], part_features=arch["part_features"], layer_norm_eps=LAYER_NORM_EPS,
        out_indices=[arch["num_layers"]],
    )
    named = {"id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}} if labels else {}
    config = VitPoseConfig(
        backbone_config=backbone, num_labels=arch["num_keypoints"], use_simple_decoder=arch["decoder"] == "simple",
        scale_factor=SIMPLE_DECODER_SCALE, **named,
    )
    if arch["num_experts"] > 1:
        config.head_dataset_index = index  # the expert this head was trained with
    return config


def _check_cls_token(layout: str, meta: dict) -> None:
    """mmpose 1.x ViTs feed a class token only with ``with_cls_token=True``, which transformers lacks."""
    cfg = meta.get("cfg") or meta.get("config")
    if layout == "mmpose" and isinstance(cfg, str) and re.search(r"with_cls_token\s*=\s*True", cfg):
        raise SpbenchError("the checkpoint's ViT attends to a class token (with_cls_token=True): transformers' ViTPose has none")


def _check_keys(expected: dict, converted: dict, unexpected: list) -> None:
    import torch

    # A BatchNorm's step counter does not change the forward pass; older files lack it.
    for key, ref in expected.items():
        if key not in converted and key.endswith("num_batches_tracked"):
            converted[key] = torch.zeros((), dtype=ref.dtype)
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(unexpected + [k for k in converted if k not in expected])
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unexpected {', '.join(unexpected)}"] if unexpected else [])
        raise SpbenchError(f"the checkpoint does not match a ViTPose: {'; '.join(parts)}")
    wrong = [f"{k} {tuple(converted[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
             if tuple(converted[k].shape) != tuple(v.shape)]
    if wrong:
        raise SpbenchError(f"the checkpoint does not match a ViTPose: wrong shapes: {', '.join(wrong)}")


def _keypoint_names(meta: dict, index: int, head_name: str | None, keypoints: int) -> list[str] | None:
    """mmpose 1.x's ``meta['dataset_meta']`` names the main head's keypoints; else spbench's schema for the head."""
    from spbench.schemas import SCHEMAS

    dataset_meta = meta.get("dataset_meta") if index == 0 else None
    id2name = dataset_meta.get("keypoint_id2name") if isinstance(dataset_meta, dict) else None
    if isinstance(id2name, dict) and sorted(id2name) == list(range(keypoints)):
        return [str(id2name[i]) for i in range(keypoints)]
    schema = SCHEMAS.get({"coco": "coco17", "ap10k": "ap10k", "apt36k": "ap10k"}.get(head_name or ""))
    if schema is not None and schema.num_keypoints == keypoints:
        return list(schema.keypoints)
    return None
