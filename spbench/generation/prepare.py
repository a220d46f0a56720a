"""Generate anywhere: ``spbench prepare`` writes what another tool needs to make a run's images
(a prepared folder, :mod:`spbench.run.prepared`), and ``spbench evaluate DIR --name NAME`` turns
the folder with those images into a run of method NAME, scored on the same protocol as any run.

The requests are the engine's own (:func:`spbench.generation.engine.plan_requests`: the same
samples, k, per-request seeds and canvas transforms as ``spbench run``), and each condition is
drawn by :func:`spbench.conditions.render_condition` with the run's ``generation.condition_render``,
as :meth:`spbench.methods.base.Method.condition_image` draws it for a method of that kind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from pathlib import Path

import spbench
from spbench.conditions import CONDITIONS, render_condition
from spbench.config import images_per_prompt
from spbench.data.records import Split
from spbench.errors import SpbenchError
from spbench.files import atomic_save_image
from spbench.generation.engine import plan_requests
from spbench.methods.registry import METHODS
from spbench.registry import did_you_mean
from spbench.run.lock import run_lock
from spbench.run.prepared import CONDITION_PATTERN, FORMAT, IMAGE_PATTERN, RESIZE_RULE, PreparedFolder, imported_config
from spbench.run.resolve import ResolvedRun, resolve_run
from spbench.run.seeds import SEED_SCHEME
from spbench.schema_files import schema_record

# Sampler settings spbench's own methods use (the paper's protocol by default): suggested to the
# other tool, not checked (the imported record holds null for them).
SUGGESTED = ("steps", "scheduler", "guidance_scale", "conditioning_scale")
NAME_RULE = r"[A-Za-z0-9._+@=-]+"


class OtherTool:
    """What :func:`spbench.run.resolve.resolve_run` asks of a method class, for a run whose images
    another tool makes: no variants, no base model or checkpoint of spbench's."""

    name = None
    variants: dict = {}
    fixed_images_per_prompt = None
    uses_base_model = False
    checkpoint_model = None


def resolve_prepared(flags: dict, profile: str, sets: list[str]) -> ResolvedRun:
    """Config, dataset split and schema of a prepared run, resolved as ``spbench run`` resolves them."""
    return resolve_run(flags, profile, sets, lambda name: OtherTool)


def condition_kinds(values: list[str] | None) -> list[str]:
    """``--condition`` values (repeated and/or comma-separated) as known condition kinds, in order."""
    kinds = []
    for value in values or []:
        for kind in (v.strip() for v in value.split(",")):
            if kind and kind not in kinds:
                kinds.append(kind)
    known = CONDITIONS.names()
    if not kinds:
        raise SpbenchError(f"--condition is empty: name at least one condition kind ({', '.join(known)})")
    for kind in kinds:
        if kind not in CONDITIONS:
            raise SpbenchError(f"--condition {kind!r}: unknown condition kind; {did_you_mean(kind, known)}known: {', '.join(known)}")
    return kinds


def write_prepared(prep: ResolvedRun, kinds: list[str], out: str | Path, progress=None) -> dict:
    """Write the prepared folder ``out`` for the resolved run ``prep``; returns prepare.json.
    ``progress``: a callable giving a rich Progress."""
    cfg, split = prep.config, prep.split
    gen = cfg["generation"]
    folder = PreparedFolder(out)
    requests = plan_requests(split, gen)
    config = imported_config(cfg, None)  # no method yet: the other tool's name comes at import
    for key in SUGGESTED:
        config["generation"][key] = cfg["generation"][key]
    canvas = requests[0].transform
    info = {
        "format": FORMAT,
        "spbench_version": spbench.__version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": {"name": split.dataset, "split": split.name, "hash": split.content_hash,
                    "num_samples": len(split), "schema": prep.schema, "data_root": split.root, "stats": split.stats,
                    **schema_record(prep.schema)},  # a schema file: its path, sha256 and definition
        "requests": {"file": "requests.jsonl", "count": len(requests), "images": IMAGE_PATTERN},
        "conditions": {"kinds": kinds, "render": gen["condition_render"], "files": CONDITION_PATTERN},
        "protocol": {
            "canvas": {"width": canvas.width, "height": canvas.height, "mode": gen["canvas_mode"]},
            "images_per_prompt": images_per_prompt(cfg),
            "seed": {"base": gen["seed"], "scheme": SEED_SCHEME},
            "negative_prompt": gen["negative_prompt"],
            "suggested_sampler": {key: gen[key] for key in SUGGESTED},
            "other_sizes": RESIZE_RULE,
        },
        "config": config,
    }
    folder.check_reusable(info)
    firsts = {}
    for r in requests:
        firsts.setdefault(r.sample.sample_id, r)

    def draw(r) -> dict:
        return {kind: render_condition(kind, r.sample, r.transform, gen["condition_render"]) for kind in kinds}

    # Every kind is drawn for the first sample before anything is shown or written: a kind that
    # cannot draw this dataset's schema stops here with one line.
    first = next(iter(firsts.values()))
    drawn = {first.sample.sample_id: draw(first)}
    with progress() if progress else contextlib.nullcontext() as bar:
        task = bar.add_task("drawing conditions", total=len(firsts)) if bar else None
        for sid, r in firsts.items():
            for kind, image in (drawn.pop(sid, None) or draw(r)).items():
                atomic_save_image(folder.condition_file(kind, sid), image)
            if bar:
                bar.advance(task)
    rows = [folder.request_row(r, gen["negative_prompt"], kinds) for r in requests]
    folder.write(info, rows, split.samples)
    return info


def check_import_name(name: str) -> None:
    """An imported run's method name: a folder-safe word that no registered method has (a record
    under a registered name would pass for that method, and be scored as it declares)."""
    if not re.fullmatch(NAME_RULE, name) or name in (".", ".."):
        raise SpbenchError(f"--name {name!r}: use letters, digits and . _ + - @ = only")
    if name in METHODS:
        raise SpbenchError(f"--name {name!r} is the name of spbench's method {name!r}: an imported run needs a name "
                           f"of its own (e.g. --name {name}-mytool), so that it never passes for that method")


def import_prepared(path: str | Path, name: str, progress=None) -> dict:
    """Turn the prepared folder ``path`` with its images into a run of method ``name`` (run.json,
    manifest.jsonl; see :meth:`PreparedFolder.import_images`, which takes ``progress``, a callable
    giving a rich Progress); returns run.json."""
    check_import_name(name)
    folder, info, requests = _read(path)
    with run_lock(folder.path):
        return folder.import_images(info, requests, name, progress)


def check_prepared_images(path: str | Path) -> None:
    """The image check of :func:`import_prepared` alone, writing nothing (for the processes that
    wait while the main one imports: a bad folder stops every process with the same error)."""
    folder, _, requests = _read(path)
    folder.check_images(requests, write_list=False)


def _read(path: str | Path) -> tuple[PreparedFolder, dict, list]:
    """The prepared folder, its prepare.json and the engine's requests for its samples."""
    folder = PreparedFolder(path)
    info = folder.read_prepare()
    samples = folder.run.read_samples()
    dataset = info["dataset"]
    split = Split(str(dataset.get("name")), str(dataset.get("split")), tuple(samples.values()), dataset.get("data_root") or "")
    if split.content_hash != dataset.get("hash"):
        raise SpbenchError(f"{folder.run.samples_jsonl} does not hold the samples {folder.prepare_json} was made from "
                           f"(split hash {split.content_hash}, prepared {dataset.get('hash')}): rerun the `spbench prepare` "
                           "command that made the folder (the images are kept)")
    return folder, info, plan_requests(split, info["config"]["generation"])
