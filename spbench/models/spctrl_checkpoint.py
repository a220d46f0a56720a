"""Loading SP-Ctrl checkpoints: the official release and spbench's own, through one function.

Both are diffusers ControlNet folders whose ``config.json`` has ``spatext_*`` keys and whose
weights (``diffusion_pytorch_model.safetensors``, or ``.bin`` read with ``weights_only=True``)
hold the SPR under ``spatext_embedding.``; the official config names its class
``SpaTextControlNetModel`` and has no ``spatext_cond_channels`` (C' is ``conditioning_channels``).
A ``learned_embeds.bin`` next to the weights holds the keypoint-token rows. Plain ControlNet
folders (the official baselines) load through :func:`spbench.models.controlnet.load_controlnet`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from spbench.errors import SpbenchError
from spbench.models.keypoint_tokens import default_learned_path
from spbench.weights import read_tensors

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
# How many key names an error lists before saying "and N more".
SHOWN_KEYS = 12


def is_spctrl_config(config: dict) -> bool:
    return any(k.startswith("spatext_") for k in config)


def load_spctrl_checkpoint(path: str, setting: str = "method.checkpoint"):
    """(SPCtrlControlNetModel in eval mode without gradients, learned_embeds.bin path or None)."""
    import torch
    from accelerate import init_empty_weights

    from spbench.models.spctrl import SPR_CONFIG_KEYS, SPCtrlControlNetModel

    folder = _local_folder(path, setting)
    config = _read_config(folder)
    if not is_spctrl_config(config):
        raise SpbenchError(f"{folder / 'config.json'} has no spatext_* settings: it is a plain ControlNet, not SP-Ctrl — run it with --method controlnet --checkpoint {path}")
    channels = config.get("conditioning_channels", 3)
    if config.get("spatext_cond_channels", channels) != channels:
        raise SpbenchError(f"{folder / 'config.json'}: spatext_cond_channels={config['spatext_cond_channels']} but conditioning_channels={channels}; both are C' and must agree")
    unknown = sorted(k for k in config if k.startswith("spatext_") and k not in SPR_CONFIG_KEYS)
    if unknown:
        raise SpbenchError(f"{folder / 'config.json'}: unknown SP-Ctrl setting(s) {', '.join(unknown)} (known: {', '.join(SPR_CONFIG_KEYS)})")
    state = read_tensors(_weights_file(folder), "an SP-Ctrl weights file", "re-download or re-save the checkpoint")
    try:
        with init_empty_weights():  # parameters on "meta": the checkpoint replaces every one
            model = SPCtrlControlNetModel.from_config(config)
    except (ValueError, TypeError) as e:
        raise SpbenchError(f"{folder / 'config.json'}: cannot build SP-Ctrl from it ({e})") from None
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise SpbenchError(f"{_weights_file(folder)} does not match {folder / 'config.json'}: missing keys {_names(missing)}; unexpected keys {_names(unexpected)}")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise SpbenchError(f"{_weights_file(folder)}: wrong shapes for {_names(wrong)} — config.json and weights disagree")
    # assign=True adopts the loaded tensors instead of copying into the meta ones; float32 like from_config.
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, assign=True)
    del state
    torch.nn.Module.to(model, torch.float32)
    return model.requires_grad_(False).eval(), default_learned_path(folder)


def _local_folder(path: str, setting: str) -> Path:
    """A local folder as is; a hub id through huggingface_hub's cache (a one-line error offline)."""
    if os.path.isdir(path):
        return Path(path)
    if os.path.exists(path) or path.startswith((".", "/", "~")) or path.count("/") != 1:
        raise SpbenchError(f"SP-Ctrl checkpoint {path!r} is not a folder: pass the folder holding config.json and diffusion_pytorch_model.* with --set {setting}=/path/to/folder")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(path, allow_patterns=["config.json", "diffusion_pytorch_model.*", "learned_embeds.bin"]))
    except Exception as e:  # offline, missing repo, gated: all one message
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise SpbenchError(f"no folder {path!r} here, and loading it as a hub id failed{offline}: {first} — download it where there is network (`hf download {path} --local-dir DIR`) and pass the folder with --set {setting}=DIR") from None


def _read_config(folder: Path) -> dict:
    file = folder / "config.json"
    try:
        config = json.loads(file.read_text())
    except FileNotFoundError:
        raise SpbenchError(f"{file} is missing: an SP-Ctrl checkpoint folder holds config.json and diffusion_pytorch_model.*") from None
    except (OSError, json.JSONDecodeError) as e:
        raise SpbenchError(f"{file} is not readable JSON ({e}): re-download or re-save the checkpoint") from None
    if not isinstance(config, dict):
        raise SpbenchError(f"{file}: expected a JSON object of model settings")
    return config


def _weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise SpbenchError(f"{folder} has no weights: expected {' or '.join(WEIGHT_FILES)}")


def _names(keys: list[str]) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")
