"""Loading real weights through the libraries' own ``from_pretrained``, with errors a user can act on."""

from __future__ import annotations

import contextlib
import contextvars
import os

from spbench.errors import SpbenchError

# Load options per model role for the run being processed (``models.variants`` / ``models.dtypes``),
# set by :func:`load_options` around generation, scoring and training.
_LOAD_OPTIONS: contextvars.ContextVar[dict] = contextvars.ContextVar("spbench_load_options", default={})
DTYPES = ("float32", "float16", "bfloat16")


@contextlib.contextmanager
def load_options(models: dict):
    """Within the block, :func:`load_pretrained` loads the model of setting ``models.ROLE`` with
    ``variant=models["variants"][ROLE]`` and ``torch_dtype=models["dtypes"][ROLE]`` where given."""
    options: dict = {}
    for role, variant in (models.get("variants") or {}).items():
        if not isinstance(variant, str) or not variant:
            raise SpbenchError(f"models.variants.{role}={variant!r}: expected a variant name such as fp16")
        options.setdefault(role, {})["variant"] = variant
    for role, dtype in (models.get("dtypes") or {}).items():
        if dtype not in DTYPES:
            raise SpbenchError(f"models.dtypes.{role}={dtype!r}: use one of {', '.join(DTYPES)}")
        import torch

        options.setdefault(role, {})["torch_dtype"] = getattr(torch, dtype)
    token = _LOAD_OPTIONS.set(options)
    try:
        yield
    finally:
        _LOAD_OPTIONS.reset(token)


def load_pretrained(cls, name_or_path: str, role: str, *, setting: str | None = None, **kwargs):
    """``cls.from_pretrained(name_or_path, **kwargs)``; a missing model becomes a one-line SpbenchError.

    ``role`` says what the model is for ("base model", "pose model"); ``setting`` names the
    ``--set`` key that points at it, so the message can say how to use a local folder instead.
    """
    hint = f"--set {setting}=/path/to/folder" if setting else "a local folder"
    local = looks_local(name_or_path)
    if local and not os.path.isdir(name_or_path):
        raise SpbenchError(f"the {role} folder {name_or_path} does not exist: check the path, or pass another "
                           f"folder with {hint}")
    model_role = setting.split(".", 1)[1] if setting and setting.startswith("models.") else None
    for key, value in _LOAD_OPTIONS.get().get(model_role, {}).items():
        if key == "torch_dtype" and cls.__name__.endswith(("Tokenizer", "Processor", "Scheduler")):
            continue  # nothing to cast
        kwargs.setdefault(key, value)
    variant = half_precision_variant(name_or_path, kwargs.get("subfolder")) if local else None
    if variant and "variant" not in kwargs:
        kwargs["variant"] = variant
    try:
        return cls.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError, EnvironmentError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if local:
            raise SpbenchError(f"cannot load the {role} from folder {name_or_path!r}: {first} — the folder must "
                               f"be a complete model folder as the hub lays it out (pass another with {hint})") from None
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise SpbenchError(
            f"cannot load the {role} from id {name_or_path!r}{offline}: {first} — "
            f"download it where there is network (`hf download {name_or_path} --local-dir DIR`) "
            f"and pass the folder with {hint}"
        ) from None


def looks_local(name_or_path: str) -> bool:
    """A folder that exists, or a spec written like a path; hub ids are ``org/name``."""
    name = os.fspath(name_or_path)
    return os.path.isdir(name) or name.startswith((".", "/", "~")) or os.path.isabs(name)


# Weight files from_pretrained reads without a variant.
_PLAIN_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", "model.safetensors",
                  "pytorch_model.bin", "diffusion_pytorch_model.safetensors.index.json",
                  "model.safetensors.index.json")


def half_precision_variant(folder: str, subfolder: str | None = None) -> str | None:
    """``"fp16"`` when a local (sub)folder holds only the ``*.fp16.*`` weights (a download of the
    hub's fp16 variant alone), which ``from_pretrained`` reads only when asked for the variant."""
    path = os.path.join(folder, subfolder) if subfolder else folder
    try:
        names = os.listdir(path)
    except OSError:
        return None
    if any(n in _PLAIN_WEIGHTS for n in names):
        return None
    return "fp16" if any(".fp16." in n for n in names) else None


def load_pipeline_parts(base: str, parts: dict, role: str, setting: str) -> dict:
    """The components of a pipeline folder or hub id, each from its subfolder: ``parts`` maps a
    component name to (class, subfolder); a scheduler comes back as its config (a dict), for
    :func:`make_scheduler`-style rebuilding. Models are frozen and in eval mode."""
    out = {}
    for name, (cls, subfolder) in parts.items():
        part = load_pretrained(cls, base, role, setting=setting, subfolder=subfolder)
        if cls.__name__.endswith("Scheduler"):
            part = dict(part.config)
        elif hasattr(part, "requires_grad_"):
            part.requires_grad_(False).eval()
        out[name] = part
    return out


def load_frozen_model(spec: str | None, setting: str, role: str, example: str, tiny_default: str, cls: str):
    """The frozen, eval-mode model ``spec`` names (a hub id or folder, loaded with the diffusers or
    transformers class ``cls``, "module:Class"), or a ``tiny://`` build; a one-line error naming
    ``setting`` and an ``example`` id when unset."""
    from spbench.registry import import_target, is_tiny_spec, tiny_builder

    if not spec:
        raise SpbenchError(f"{setting} is not set: name the {role} (a hub id or a folder), "
                           f"e.g. --set {setting}={example}, or pass --checkpoint")
    if is_tiny_spec(spec):
        return tiny_builder(spec, tiny_default, "unknown tiny model {spec!r} (" + setting + "): use {known}")()
    return load_pretrained(import_target(cls), spec, role=role, setting=setting).requires_grad_(False).eval()

