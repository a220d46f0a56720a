"""Resolving a run, once for everyone: the config, the dataset split, its keypoint schema and the
run folder. ``spbench run`` / ``generate`` and ``spbench train`` resolve a new run with
:func:`resolve_run`; scoring reads the resolved run back from its folder with :func:`open_run`.

Nothing heavy is imported or loaded here. The method registry lives above this layer, so the
caller passes its lookup (``find_method``: name or ``"module:Class"`` -> method class).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spbench.config import load_profile, resolve
from spbench.data.records import Split
from spbench.data.registry import check_image_files, dataset_of_split, load_split, resolve_annotation_file
from spbench.errors import SpbenchError
from spbench.run.folder import RunFolder
from spbench.schema_files import config_entries, register_recorded, requested_schema, resolve_schema
from spbench.schemas import get_schema

@dataclass
class ResolvedRun:
    """A run as resolved: what generation, scoring and training start from."""

    config: dict             # defaults < profile < flags < --set; dataset name, split and schema filled in
    split: Split | None      # the dataset split (None for a run read back: its samples are in samples.jsonl)
    run: RunFolder | None    # the run folder (None when training: it writes a training folder instead)
    method_cls: type | None  # the method class (None for a run read back)
    schema: str | None       # the dataset's keypoint schema (None only in a run.json written before it was recorded)
    info: dict | None = None  # run.json, for a run read back from its folder


def resolve_run(flags: dict, profile: str, sets: list[str], find_method: Callable[[str], type],
                out: str | Path | None = None, name: str | None = None) -> ResolvedRun:
    """Resolve config, dataset split, schema and method class, and with ``out`` the run folder:
    ``OUT/<dataset>-<split>[-<schema file's name>]-<method>[-<variant>]-<profile>[-<checkpoint>]``, or ``OUT/<name>``
    with ``name`` (``--name``). ``flags`` are dotted settings (``dataset.name``, ``method.name``, ...)."""
    d = {k[len("dataset."):]: v for k, v in flags.items() if k.startswith("dataset.")}
    # dataset.schema (a built-in name or a schema file) decides how the annotations are read.
    chosen_schema = resolve_schema(requested_schema(flags, sets))
    split = load_split(d.get("name") or "sample", d.get("split"), d.get("data_root"), d.get("ann"), schema=chosen_schema)
    split = split.limit(d.get("limit"))
    if len(split) == 0:
        raise SpbenchError(f"dataset {split.dataset!r} split {split.name!r} has no usable samples (`spbench data check` shows why)")
    # Before any image is made: every image file opens and has the annotated size (headers only).
    check_image_files(split, resolve_annotation_file(d.get("name") or "sample", d.get("split"), d.get("data_root"), d.get("ann"))[1])
    schema = split.samples[0].schema
    profile_data = load_profile(profile)
    config = resolve(profile_data, schema, flags, sets)
    recommended = getattr(find_method(config["method"]["name"]), "recommended", None)
    if recommended:  # the method's own settings (model card): over the profile, under flags and --set
        config = resolve(profile_data, schema, flags, sets, recommended)
    config["dataset"]["name"], config["dataset"]["split"] = split.dataset, split.name
    config["dataset"].update(config_entries(get_schema(schema)))
    method_cls = find_method(config["method"]["name"])
    variant = config["method"]["variant"]
    if variant is not None and variant not in method_cls.variants:
        known = ", ".join(method_cls.variants) or "none"
        raise SpbenchError(f"method {method_cls.name!r} has no variant {variant!r} (variants: {known})")
    if method_cls.fixed_images_per_prompt is not None:
        config["generation"]["images_per_prompt"] = method_cls.fixed_images_per_prompt
    base_role = getattr(method_cls, "base_model", "base")  # the models.<role> of the model it generates with
    if method_cls.uses_base_model and not config["models"].get(base_role):
        what = "the Stable Diffusion 1.5" if base_role == "base" else "the base model"
        raise SpbenchError(
            f"profile {config['profile']['name']}: models.{base_role} is not set ({what} that "
            f"{method_cls.name} generates with); add `models: {{{base_role}: ID_OR_FOLDER}}` to the profile "
            f"or pass --set models.{base_role}=ID_OR_FOLDER"
        )
    checkpoint = config["method"]["checkpoint"]
    role = method_cls.checkpoint_model  # the models.<role> that --checkpoint stands in for
    if checkpoint and role in config["models"]:
        config["models"][role] = checkpoint  # the config shows what --checkpoint replaced
    folder = None
    if out is not None:
        if name is not None:
            if not re.fullmatch(r"[A-Za-z0-9._+@=-]+", name) or name in (".", ".."):
                raise SpbenchError(f"--name {name!r}: use letters, digits and . _ + - @ = only (it names a folder under --out)")
        else:
            tag = checkpoint_label(checkpoint) if checkpoint else None
            # A schema file's name joins the dataset's, so its runs never share a folder with the built-in schema's.
            file_schema = config["dataset"]["schema"] if config["dataset"].get("schema_file") else None
            name = "-".join(str(p) for p in (split.dataset, split.name, file_schema, method_cls.name, variant,
                                             config["profile"]["name"], tag) if p)
        folder = RunFolder(Path(out) / name)
    return ResolvedRun(config, split, folder, method_cls, schema)


def open_run(run_dir: str | Path) -> ResolvedRun:
    """The run a folder holds, as :func:`resolve_run` resolved it when it was generated (run.json)."""
    folder = RunFolder(run_dir)
    info = folder.read_run()
    register_recorded(info.get("dataset"))  # a schema file's definition, as the run recorded it
    schema = info["dataset"].get("schema") or info["config"].get("dataset", {}).get("schema")
    return ResolvedRun(info["config"], None, folder, None, schema, info)


def checkpoint_label(checkpoint: str) -> str:
    """The run folder's name part for ``--checkpoint``: the folder's name, with the training folder
    for a `spbench train` checkpoint (``train-tiny/checkpoint-20/spctrl`` -> ``train-tiny-checkpoint-20``)."""
    parts = [p for p in str(checkpoint).replace("\\", "/").rstrip("/").split("/") if p not in ("", ".")]
    if len(parts) >= 2 and re.fullmatch(r"checkpoint-\d+", parts[-2]):
        parts = parts[-3:-1]            # OUT/checkpoint-N/<model folder>
    elif parts and re.fullmatch(r"checkpoint-\d+", parts[-1]):
        parts = parts[-2:]              # OUT/checkpoint-N
    else:
        parts = parts[-1:]
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", "-".join(parts)).strip("-.") or "checkpoint"


def run_schema(config: dict) -> str:
    """The keypoint schema a run's method works with: ``method.options.schema`` if set, else the
    dataset's: ``dataset.schema`` as :func:`resolve_run` recorded it, or for a config without it,
    the dataset registry's (for the shipped sample, the registry's dataset that is its split)."""
    chosen = config["method"]["options"].get("schema")
    if chosen:
        return resolve_schema(chosen).name
    dataset = config["dataset"]
    if dataset.get("schema"):
        return dataset["schema"]
    return dataset_of_split(dataset["name"], dataset.get("split")).schema
