"""The resolved run configuration: defaults < profile < command-line flags < ``--set key=value``.

One nested dict records everything that decides a run; it is written to ``run.json`` and the
result record, and ``--set`` can reach any leaf by its dotted name (``generation.steps=20``).
"""

from __future__ import annotations

import copy
import difflib
import math
import os
from importlib import resources
from pathlib import Path

import yaml

from spbench.errors import SpbenchError

DEFAULTS: dict = {
    # schema: the keypoint schema (None: the dataset's; ap10k | coco17 | a schema file, YAML or JSON:
    # spbench.schema_files). A run records the name here, and for a file schema_file and schema_sha256.
    "dataset": {"name": "sample", "split": None, "data_root": None, "ann": None, "limit": None, "schema": None},
    # `options` is free-form: a method reads its own keys (e.g. method.options.conditions_dir).
    "method": {"name": "controlnet", "variant": None, "checkpoint": None, "options": {}},
    "profile": {"name": "tiny", "tiny": True},
    # Every model a run uses: a hub id, a local folder, or tiny://<name> (built in-process).
    "models": {
        "base": None,             # Stable Diffusion 1.5
        "controlnet": None,       # ControlNet checkpoint for `controlnet` (None: from the UNet)
        "t2i_adapter": None,      # T2I-Adapter checkpoint for `t2i-adapter` (None: untrained)
        "depth_estimator": None,  # ZoeDepth, for `controlnet-depth` conditions
        "segmenter": None,        # SAM-HQ, for `controlnet-mask` conditions
        "pose": None,             # ViTPose(++), picked per keypoint schema from pose_models
        "pose_dataset_index": None,
        "clip": None,             # CLIP ViT-L/14 for CLIP-Score
        "inception": None,        # Inception weights for FID
        "detector": None,         # Grounding-DINO for detection AP.75 (and the person finder of --protocol humansd)
        "humansd_clip": None,     # --protocol humansd's CLIPSIM model (None: openai/clip-vit-base-patch16; tiny: tiny://clip)
        "lpips": None,            # diversity: LPIPS backbone (alex | vgg | squeeze | torchvision weights file)
        "dino": None,             # diversity: DINOv2 image embedding of the Vendi score
        # Newer bases (not the paper's models): the base and ControlNet of each pose ControlNet
        # method (`spbench ls`); --checkpoint stands in for the method's ControlNet role.
        "sdxl_base": None,                  # SDXL base 1.0, for controlnet-sdxl-*
        "sdxl_vae": None,                   # another SDXL VAE (None: the base's), e.g. madebyollin/sdxl-vae-fp16-fix
        "controlnet_sdxl_xinsir": None,     # xinsir/controlnet-openpose-sdxl-1.0
        "controlnet_sdxl_thibaud": None,    # thibaud/controlnet-openpose-sdxl-1.0
        "sd3_base": None,                   # SD3 medium, for controlnet-sd3
        "controlnet_sd3": None,             # InstantX/SD3-Controlnet-Pose
        "flux_base": None,                  # FLUX.1-dev, for controlnet-flux-*
        "controlnet_flux_union": None,      # InstantX/FLUX.1-dev-Controlnet-Union (pose mode)
        "controlnet_flux_union_pro": None,  # Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro (pose mode)
        # Per model role (base, controlnet, t2i_adapter, pose, clip, detector, depth_estimator,
        # segmenter): the weights variant to load (e.g. fp16: a folder holding only
        # *.fp16.safetensors is found without it) and the dtype to load in, e.g.
        # --set models.variants.base=fp16 --set models.dtypes.clip=bfloat16
        "variants": {},
        "dtypes": {},
    },
    "generation": {
        "steps": 50,
        "guidance_scale": 7.5,
        "conditioning_scale": 1.0,
        "scheduler": "unipc",
        "negative_prompt": "",
        "images_per_prompt": 3,  # k: images per prompt, each from its own seed (paper: 3)
        "seed": 0,
        "batch_size": 4,
        "canvas": 512,
        "canvas_mode": "stretch",
        # How pose conditions are drawn: official (at the original image size, radius/stick 4,
        # then resized to the canvas as the official inference does) | native (on the canvas).
        "condition_render": "official",
        "dtype": "auto",  # auto: float16 on CUDA, float32 on CPU
        "compile": False,  # torch.compile the UNet and ControlNet (pays off over long runs; BENCHMARKS.md)
    },
    "evaluation": {
        "metrics": "pose",
        # official: the official SP-Ctrl evaluation (original frame, mmpose decoding, see README
        # "Fidelity") | canvas: spbench's own, everything in the canvas frame, every k.
        "protocol": "official",
        "pose_batch_size": 16,
        "clip_text": "descriptions",  # keypoint tokens -> their words (the paper); tokens | caption
        "clip_group_by": "auto",      # average per species (AP-10K) / scene (Human-Art), then over groups
        "clip_batch_size": 32,
        "fid_resize": "antialias",    # extractor resize to 299: torch bilinear+antialias | tf1
        "fid_batch_size": 32,
        "det_box_threshold": 0.0,     # no score cut: COCOeval ranks the detections
        "det_batch_size": 8,
        "diversity_batch_size": 16,   # images per DINOv2 batch (whole prompts; LPIPS pairs within each)
        # Bootstrap interval over prompts of every headline (spbench.metrics.bootstrap); 0 resamples: none.
        "bootstrap_resamples": 1000,
        "bootstrap_fid_resamples": 100,  # FID's: each recomputes a 2048x2048 Frechet distance (seconds on a CPU)
        "bootstrap_seed": 0,
        "bootstrap_confidence": 0.95,
        # --protocol humansd (spbench.metrics.humansd_protocol, where each one is explained).
        "humansd": {"code": "official", "pose_batch": 10, "box_threshold": 0.35, "max_people": 30,
                    "max_condition_people": 10, "kid_subset_size": 1000, "kid_subsets": 100, "kid_seed": 0},
        # --protocol stable-pose: the same settings, Stable-Pose's (and GRPose's) values.
        "stable_pose": {"code": "official", "pose_batch": 4, "box_threshold": 0.35, "max_people": 30,
                        "max_condition_people": 10, "kid_subset_size": 200, "kid_subsets": 100, "kid_seed": 0},
    },
    # Caches (FID reference statistics, extracted conditions); None: $SPBENCH_CACHE or ~/.cache/spbench.
    "paths": {"cache": None},
}

# Settings under their old names: old dotted key -> new (still accepted in profiles and --set).
RENAMED = {"generation.samples": "generation.images_per_prompt"}

# Sections whose keys are free-form (any name may be set).
FREE_FORM = {("method", "options"), ("models", "variants"), ("models", "dtypes")}

# Top-level keys a profile YAML may have.
PROFILE_KEYS = {"description", "tiny", "models", "pose_models", "generation", "evaluation"}


def images_per_prompt(config: dict) -> int:
    """Images generated per prompt (k): ``generation.images_per_prompt``; records and configs
    written before the rename hold it as ``generation.samples``."""
    gen = config.get("generation", {})
    return gen["images_per_prompt"] if "images_per_prompt" in gen else gen["samples"]


def upgrade_config(config: dict) -> dict:
    """A config read back from a run.json written by an older spbench, with settings under their
    current names (in place; returned for convenience)."""
    for old, new in RENAMED.items():
        (section, old_key), new_key = old.split("."), new.split(".")[1]
        node = config.get(section)
        if isinstance(node, dict) and old_key in node and new_key not in node:
            node[new_key] = node.pop(old_key)
    return config


def profile_names() -> list[str]:
    folder = resources.files("spbench.configs") / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str) -> dict:
    """A packaged profile by name (``tiny``, ``paper``) or a YAML file of the same shape."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SpbenchError(f"profile file {path} does not exist: pass an existing YAML file or one of {', '.join(profile_names())}")
        text = path.read_text()
        name = path.stem
        profile_file = path
    else:
        names = profile_names()
        if name_or_path not in names:
            close = difflib.get_close_matches(name_or_path, names, n=1)
            hint = f" — did you mean {close[0]!r}?" if close else ""
            raise SpbenchError(f"unknown profile {name_or_path!r}{hint} (known: {', '.join(names)}, or a path to a YAML file)")
        text = (resources.files("spbench.configs") / "profiles" / f"{name_or_path}.yaml").read_text()
        name = name_or_path
        # Packaged profiles name paths relative to where spbench runs (README: ./weights/).
        profile_file = None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise SpbenchError(f"profile {name_or_path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SpbenchError(f"profile {name_or_path}: expected a mapping at the top level")
    unknown = set(data) - PROFILE_KEYS
    if unknown:
        raise SpbenchError(f"profile {name_or_path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(PROFILE_KEYS))}")
    data["name"] = name
    if profile_file is not None:
        _resolve_profile_paths(data, profile_file)
    return data


def _resolve_profile_paths(data: dict, profile_file: Path) -> None:
    """Model paths in a profile file are relative to that file, not to the working directory:
    ``./x``, ``../x`` and ``~/x`` always are paths; any other relative value is a path when it
    exists next to the profile, else it stays what it is (a hub id such as ``org/name``)."""
    folder = profile_file.resolve().parent

    def fix(value):
        if not isinstance(value, str) or not value or "://" in value or value == "oracle" or os.path.isabs(value):
            return value
        if value.startswith("~"):
            return os.path.expanduser(value)
        if value in (".", "..") or value.startswith(("./", "../", ".\\", "..\\")) or (folder / value).exists():
            return os.path.normpath(folder / value)
        return value

    models = data.get("models")
    if isinstance(models, dict):
        for key, value in models.items():
            models[key] = fix(value)
    pose_models = data.get("pose_models")
    if isinstance(pose_models, dict):
        for entry in pose_models.values():
            if isinstance(entry, dict) and "id" in entry:
                entry["id"] = fix(entry["id"])


def resolve(profile: dict, schema: str, flags: dict, sets: list[str], recommended: dict | None = None) -> dict:
    """Merge defaults, the profile (its pose model picked for ``schema``), the method's
    ``recommended`` settings (dotted key -> value, see :func:`apply_recommended`), flags and ``--set``s."""
    cfg = copy.deepcopy(DEFAULTS)
    cfg["profile"] = {"name": profile["name"], "tiny": bool(profile.get("tiny", False))}
    sections = {k: profile.get(k) or {} for k in ("models", "generation", "evaluation")}
    _merge(cfg, sections, "profile " + profile["name"])
    pose_models = profile.get("pose_models") or {}
    # "any": the pose model of every schema the profile does not name (e.g. a schema file's).
    pose = pose_models.get(schema) or pose_models.get("any")
    if pose:
        cfg["models"]["pose"] = pose.get("id")
        cfg["models"]["pose_dataset_index"] = pose.get("dataset_index")
    if recommended:
        apply_recommended(cfg, profile, recommended)
    for dotted, value in flags.items():
        if value is not None:
            set_key(cfg, dotted, value)
    for item in sets:
        apply_set(cfg, item)
    return cfg


def apply_recommended(cfg: dict, profile: dict, recommended: dict) -> None:
    """A method's recommended settings (its model card's sampler, steps, guidance, canvas, ...):
    they win over the profile, and flags and ``--set`` win over them. A tiny profile
    (``tiny: true``) keeps the settings it names itself (its tiny models are built for its small
    canvas). The recommendations are recorded as ``method.recommended``."""
    for dotted, value in recommended.items():
        section, _, key = dotted.partition(".")
        own = profile.get(section)
        if profile.get("tiny") and isinstance(own, dict) and key in own:
            continue
        set_key(cfg, dotted, value, source=f"the method's recommended {dotted}")
    cfg["method"]["recommended"] = dict(recommended)


def apply_set(cfg: dict, item: str) -> None:
    """Apply one ``key=value`` (value parsed as YAML: numbers, booleans, null, strings)."""
    if "=" not in item:
        raise SpbenchError(f"--set {item!r}: expected key=value, e.g. --set generation.steps=20")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    set_key(cfg, key.strip(), value, source=f"--set {item}")


def set_key(cfg: dict, dotted: str, value, source: str | None = None) -> None:
    source = source or dotted
    dotted = RENAMED.get(dotted, dotted)
    node = cfg
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, dict) and tuple(parts[:i]) in FREE_FORM and i == len(parts) - 1:
            node[part] = value
            return
        if not isinstance(node, dict) or part not in node:
            siblings = list(node) if isinstance(node, dict) else []
            prefix = ".".join(parts[:i])
            options = [f"{prefix}.{s}" if prefix else s for s in siblings]
            close = difflib.get_close_matches(dotted, options, n=1)
            hint = f" — did you mean {close[0]!r}?" if close else f" (known: {', '.join(options)})"
            raise SpbenchError(f"{source}: unknown setting {dotted!r}{hint}")
        if i < len(parts) - 1:
            node = node[part]
    leaf = parts[-1]
    node[leaf] = _check_value(dotted, _coerce(node[leaf], value, source), source)


def _coerce(old, value, source):
    """Keep a setting's type: an int stays an int, a float accepts ints, None accepts anything."""
    if old is None or value is None or isinstance(old, str) and isinstance(value, str):
        return value
    if isinstance(old, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(old, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(old, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(old, str):
        return str(value)
    raise SpbenchError(f"{source}: expected {type(old).__name__}, got {value!r}")


def _merge(cfg: dict, update: dict, source: str, prefix: str = "") -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            _merge(cfg[key], value, source, f"{prefix}{key}.")
        else:
            set_key_flat(cfg, key, value, source, prefix)


def set_key_flat(node: dict, key: str, value, source: str, prefix: str = "") -> None:
    renamed = RENAMED.get(prefix + key)
    if renamed is not None:
        key = renamed.rpartition(".")[2]
    if key not in node:
        close = difflib.get_close_matches(key, list(node), n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        raise SpbenchError(f"{source}: unknown setting {key!r}{hint}")
    node[key] = _check_value(prefix + key, _coerce(node[key], value, source), source)


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _is_finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# Values checked where they are set (profile, flag or --set), so a typo costs seconds, not a
# generation: dotted key -> (test, what is expected).
VALUE_RULES: dict = {
    "generation.canvas": (lambda v: _is_count(v) and v % 8 == 0,
                          "a positive multiple of 8 (the VAE works on 8x8-pixel blocks), e.g. 512"),
    "generation.batch_size": (_is_count, "an integer >= 1"),
    "generation.steps": (_is_count, "an integer >= 1 (protocol: 50)"),
    "generation.images_per_prompt": (_is_count, "an integer >= 1 (protocol: 3)"),
    "generation.guidance_scale": (_is_finite, "a finite number (protocol: 7.5)"),
    "generation.conditioning_scale": (_is_finite, "a finite number (protocol: 1.0)"),
    "generation.canvas_mode": (lambda v: v in ("stretch", "letterbox"), "stretch or letterbox"),
    "generation.seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "dataset.limit": (lambda v: v is None or _is_count(v), "an integer >= 1 (or null for the whole split)"),
    "evaluation.pose_batch_size": (_is_count, "an integer >= 1"),
    "evaluation.clip_batch_size": (_is_count, "an integer >= 1"),
    "evaluation.fid_batch_size": (_is_count, "an integer >= 1"),
    "evaluation.det_batch_size": (_is_count, "an integer >= 1"),
    "evaluation.diversity_batch_size": (_is_count, "an integer >= 1"),
    "evaluation.det_box_threshold": (_is_finite, "a finite number"),
    "evaluation.bootstrap_resamples": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                                       "an integer >= 0 (0: no bootstrap interval)"),
    "evaluation.bootstrap_fid_resamples": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                                           "an integer >= 0 (0: no FID interval)"),
    "evaluation.bootstrap_seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "evaluation.bootstrap_confidence": (lambda v: _is_finite(v) and 0 < v < 1, "a number strictly between 0 and 1, e.g. 0.95"),
}


def _check_value(dotted: str, value, source: str):
    rule = VALUE_RULES.get(dotted)
    if rule is not None and not rule[0](value):
        where = "" if source == dotted else f"{source}: "
        raise SpbenchError(f"{where}{dotted} must be {rule[1]}, got {value!r}; "
                           f"fix it with --set {dotted}=VALUE or in the profile")
    return value
