"""The chain behind the CLI: resolve a run, generate it, evaluate it, write its record.

Each step reads and writes plain files in the run folder, so ``spbench generate`` and
``spbench evaluate RUN_DIR`` can run apart and ``spbench run`` is just both.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from spbench.data.records import Split
from spbench.errors import SpbenchError
from spbench.files import atomic_write_json, atomic_write_jsonl
from spbench.methods.registry import declared, get_method_class
from spbench.registry import is_tiny_spec, tiny_builder
from spbench.run.folder import RunFolder
from spbench.models.hub import load_options
from spbench.run.lock import run_lock
from spbench.run.resolve import ResolvedRun, open_run, resolve_run
from spbench.run.threads import limit_cpu_threads
from spbench.schema_files import schema_record


def prepare(flags: dict, profile: str, sets: list[str], out: str, name: str | None = None) -> ResolvedRun:
    """The run ``spbench run`` / ``generate`` make: :func:`spbench.run.resolve.resolve_run` with
    the method registry; nothing heavy is imported or loaded. The run folder is
    ``OUT/<dataset>-<split>-<method>[-<variant>]-<profile>[-<checkpoint>]``, or ``OUT/<name>``."""
    return resolve_run(flags, profile, sets, get_method_class, out, name)


def _state():
    """accelerate's process state. Without CUDA (or with ACCELERATE_USE_CPU) processes started by
    `accelerate launch` join over gloo on the CPU, so sharding works on CPU machines too."""
    import os

    import torch
    from accelerate import PartialState

    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") or not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())


def is_main_process() -> bool:
    return _state().is_main_process


def generate(prep: ResolvedRun, keep_lock: bool = False) -> dict:
    """Generate the run's missing images. The run folder is locked while this runs (a second
    process into the same folder stops with a one-line message); ``keep_lock`` keeps it held for
    the scoring that follows in the same command."""
    state = _state()
    with run_lock(prep.run.path, enabled=state.is_main_process, keep=keep_lock), load_options(prep.config["models"]):
        return _generate_locked(prep, state)


def _generate_locked(prep: ResolvedRun, state) -> dict:
    import torch

    from spbench.generation import engine
    from spbench.run.requests import GenerationSettings, MethodContext

    cfg = prep.config
    limit_cpu_threads(cfg)
    device = state.device
    dtype = engine.resolve_dtype(cfg["generation"]["dtype"], device)
    method = prep.method_cls(MethodContext(cfg, torch.device(device), dtype))
    requests = engine.plan_requests(prep.split, cfg["generation"])
    run_info = {
        "run": prep.run.path.name,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": {
            "name": prep.split.dataset, "split": prep.split.name, "hash": prep.split.content_hash,
            "num_samples": len(prep.split), "schema": prep.schema,
            "data_root": prep.split.root, "stats": prep.split.stats,
            **schema_record(prep.schema),  # a schema file: its path, sha256 and definition
        },
        "method": {"name": method.name, "variant": cfg["method"]["variant"], "condition": method.condition,
                   "checkpoint": cfg["method"]["checkpoint"]},
        "models": method.identity(),
    }
    if method.reads_reference_images:
        # Their images or conditions come from the image files: a resumed run must find the same.
        run_info["dataset"]["reference_images"] = reference_image_sizes(prep.split)
    if state.is_main_process:
        from spbench.results.models import generation_weights

        run_info["weights"] = generation_weights(run_info["models"])  # paths or hub ids, fingerprinted
        prep.run.start(cfg, run_info, list(prep.split.samples))
    state.wait_for_everyone()
    settings = GenerationSettings.from_config(cfg["generation"])
    with _progress() as progress:
        counts = engine.generate(prep.run, method, requests, settings, cfg["generation"]["batch_size"], state,
                                 progress if state.is_main_process else None, cfg["generation"]["compile"])
    return counts


def reference_image_sizes(split: Split) -> dict:
    """sample id -> size in bytes of its image file (None when missing): cheap to take, and it
    changes when another file stands under the same name."""
    import os

    sizes = {}
    for sample in split.samples:
        try:
            sizes[sample.sample_id] = os.path.getsize(split.image_path(sample))
        except OSError:
            sizes[sample.sample_id] = None
    return sizes


def check_scoring(config: dict, metrics: list[str], pose_model: str | None = None,
                  protocol: str | None = None, method: str | None = None) -> str:
    """Check, in seconds, what scoring will need, so that a typo is found before a generation:
    the protocol and the model of each chosen metric (a local path must exist; a hub id must be
    in the local cache when HF_HUB_OFFLINE is set). Returns the resolved protocol."""
    from spbench.metrics import humansd_protocol
    from spbench.metrics.evaluate import resolve_protocol

    protocol = resolve_protocol(protocol, config)
    models = config["models"]
    not_applicable = declared(method, "not_applicable", {})  # metrics the method (its name) is not scored by
    for name in humansd_protocol.protocol_metrics(metrics, protocol):
        if name in not_applicable:
            continue
        if humansd_protocol.family_of(name):
            _check_humansd_models(config, name, pose_model)
        elif name == "pose":
            setting = "--pose-model" if pose_model else "models.pose"
            _check_model(pose_model or models.get("pose"), "pose model", setting, ("oracle", "tiny://vitpose"),
                         " (convert the paper's mmpose checkpoint into it with `spbench convert vitpose`)")
            if protocol == "official" and (config.get("dataset") or {}).get("schema"):
                from spbench.metrics.pose_official import official_settings

                official_settings(config["dataset"]["schema"])  # e.g. a schema file without official_protocol
        elif name == "clip":
            _check_model(models.get("clip"), "CLIP model", "models.clip", ("tiny://clip",))
        elif name == "det":
            _check_model(models.get("detector"), "detector (Grounding-DINO)", "models.detector",
                         ("oracle", "tiny://grounding-dino"))
        elif name == "diversity":
            from spbench.metrics.diversity_scoring import check_diversity_models

            check_diversity_models(config)  # models.lpips's file exists; models.dino is set
            _check_model(models.get("dino"), "DINOv2 model", "models.dino", ("tiny://dinov2",))
        elif name == "fid":
            _check_inception(models)
    return protocol


def _check_inception(models: dict) -> None:
    import os

    from spbench.metrics.fid_inception import INCEPTION_NAME, TINY_INCEPTION, inception_weights

    spec = models.get("inception")
    if not spec:
        raise SpbenchError("no FID Inception weights configured: set models.inception to "
                           "pt_inception-2015-12-05 or a .pth / .safetensors path")
    if is_tiny_spec(spec):  # a known tiny name, asked of the tiny-model registry
        tiny_builder(spec, TINY_INCEPTION, "unknown tiny FID extractor {spec!r} (models.inception): use {known}")
    elif spec != INCEPTION_NAME or os.environ.get("HF_HUB_OFFLINE"):
        inception_weights(str(spec))  # a path must exist; offline, the named file must be cached


def _check_humansd_models(config: dict, name: str, pose_model: str | None) -> None:
    """The models of one of the HumanSD family's metrics (spbench.metrics.humansd_protocol.MODEL_ROLES)."""
    from spbench.metrics import humansd_protocol
    from spbench.metrics.model_specs import is_diagnostic_model

    family = humansd_protocol.family_of(name)
    humansd_protocol.settings(config, family)  # evaluation.humansd / evaluation.stable_pose, checked
    if humansd_protocol.kind_of(name) == "pose":
        humansd_protocol.check_schema(config)
    models = config["models"]
    for role in humansd_protocol.MODEL_ROLES[name]:
        if role == "pose":
            setting = "--pose-model" if pose_model else "models.pose"
            _check_model(pose_model or models.get("pose"), "pose model", setting, ("oracle", "tiny://vitpose"),
                         " (convert the paper's mmpose checkpoint into it with `spbench convert vitpose`)")
        elif role == "detector" and not is_diagnostic_model(pose_model or models.get("pose")):
            _check_model(models.get("detector"), "person detector (Grounding-DINO)", "models.detector",
                         ("oracle", "tiny://grounding-dino"))
        elif role == "humansd_clip":
            _check_model(humansd_protocol.clip_model(config), "CLIP model (HumanSD's CLIPSIM)", "models.humansd_clip",
                         ("tiny://clip",))
        elif role == "inception":
            _check_inception(models)


def _check_model(spec, role: str, setting: str, builtin: tuple[str, ...], folder_hint: str = "") -> None:
    import os

    if isinstance(spec, dict):  # {"model": ..., "dataset_index": ...}
        spec = spec.get("model") or spec.get("name")
    if not spec:
        raise SpbenchError(f"no {role} configured: set {setting} to a hub id or a local folder")
    spec = os.fspath(spec)
    if spec in builtin:
        return
    from spbench.metrics.perturbed import is_perturbed, perturbed_seed

    if is_perturbed(spec) and role in ("pose model", "detector (Grounding-DINO)"):
        perturbed_seed(spec)  # a malformed seed is a one-line error here, before any generation
        return
    if is_tiny_spec(spec):
        raise SpbenchError(f"unknown {role} {spec!r} ({setting}): use one of {', '.join(builtin)}, a hub id or a folder")
    path = os.path.expanduser(spec)
    if spec.startswith((".", "/", "~")) or os.path.isabs(spec) or os.path.exists(path):
        if not os.path.isdir(path):
            raise SpbenchError(f"{role} folder {spec} does not exist{folder_hint}; fix {setting} (a local folder or a hub id)")
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise SpbenchError(f"{role} folder {spec} has no config.json: pass the folder a model was saved to "
                               f"with save_pretrained ({setting})")
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(spec, "config.json")
        except Exception:  # not a valid repo id either
            cached = None
        if not isinstance(cached, str):
            raise SpbenchError(
                f"{role} {spec!r} is neither a local folder nor in the Hugging Face cache, and HF_HUB_OFFLINE is set: "
                f"download it where there is network (`hf download {spec} --local-dir DIR`) and pass --set {setting}=DIR"
                if setting != "--pose-model" else
                f"{role} {spec!r} is neither a local folder nor in the Hugging Face cache, and HF_HUB_OFFLINE is set: "
                f"download it where there is network (`hf download {spec} --local-dir DIR`) and pass --pose-model DIR"
            )


def parse_metrics(text: str | None, protocol: str | None = None) -> list[str]:
    """The metrics of ``--metrics``; unset: pose (evaluation.metrics), or under ``--protocol humansd``
    (``stable-pose``) every metric of that protocol."""
    from spbench.config import DEFAULTS
    from spbench.metrics.evaluate import METRICS
    from spbench.metrics.humansd_protocol import FAMILIES, SHORTHANDS

    if text is None:
        text = FAMILIES[protocol].prefix if protocol in FAMILIES else DEFAULTS["evaluation"]["metrics"]
    names = [m.strip() for m in text.split(",") if m.strip()]
    for m in names:
        if m not in METRICS and m not in SHORTHANDS:  # kid, humansd, stablepose: the HumanSD family's metrics
            raise SpbenchError(f"unknown metric {m!r} in --metrics (known: {', '.join([*METRICS, *SHORTHANDS])})")
    if not names:
        raise SpbenchError("--metrics is empty: name at least one of " + ", ".join(METRICS))
    return names


def scoring_config(config: dict, sets: list[str] | None) -> dict:
    """``config`` with the scoring settings ``sets`` (``evaluation.KEY=VALUE``, as ``--set`` on
    ``spbench evaluate``) applied to a copy; anything else is a one-line error (generation settings
    change the images: they belong to ``spbench run``). With ``config`` empty, only the keys' form
    is checked."""
    import copy

    from spbench.config import DEFAULTS, apply_set

    for item in sets or ():
        if not item.strip().startswith("evaluation."):
            raise SpbenchError(f"--set {item!r}: spbench evaluate changes scoring settings (evaluation.*) only; a setting "
                               "that changes the images belongs to `spbench run` (same command, another --set)")
    out = copy.deepcopy(config or {"evaluation": DEFAULTS["evaluation"]})
    out.setdefault("evaluation", {})
    for section, value in DEFAULTS["evaluation"].items():  # run folders written before a section existed
        out["evaluation"].setdefault(section, copy.deepcopy(value))
    for item in sets or ():
        apply_set(out, item)
    return out


def evaluate(run_dir: str | Path, metrics: list[str], pose_model: str | None = None,
             protocol: str | None = None, keep_lock: bool = False, sets: list[str] | None = None) -> tuple[dict, Path]:
    """Score a finished run folder; adds the scores to result.json and per_image.jsonl (metrics
    merge by name into the record the folder has, when it scored the same images), returns the
    record.

    Pose scored with a diagnostic pose model (``oracle``, or ``pose_model`` other than the run's
    ``models.pose``) is stored under its own key, ``pose@<model>``, flagged ``diagnostic``: it never
    replaces or passes for the protocol's ``pose``. AP-10K pose from a model without an AP-10K
    head is flagged ``invalid`` with the reason. ``sets``: scoring settings for this evaluation
    (:func:`scoring_config`); the record's ``config`` shows them, each metric's description the
    settings it was scored with."""
    from spbench.metrics.evaluate import ScoringContext
    from spbench.metrics.humansd_protocol import protocol_metrics

    state = _state()
    resolved = open_run(run_dir)
    run, info = resolved.run, resolved.info
    if sets:
        info = {**info, "config": scoring_config(info["config"], sets)}
    # The protocol and the model of every chosen metric, checked before any image is decoded.
    protocol = check_scoring(info["config"], metrics, pose_model, protocol, (info.get("method") or {}).get("name"))
    metrics = protocol_metrics(metrics, protocol)  # --protocol humansd / stable-pose: pose, fid, clip, kid are theirs
    with run_lock(run.path, enabled=state.is_main_process, keep=keep_lock), load_options(info["config"]["models"]):
        if state.is_main_process:
            # A killed evaluation (or generation) can leave its temporary file behind; under the
            # lock nobody else is writing here.
            for stale in run.path.rglob(".*.tmp"):
                stale.unlink(missing_ok=True)
        manifest = run.read_manifest()
        if state.is_main_process:
            run.verify_images(manifest)
        limit_cpu_threads(info["config"])
        config_pose = info["config"]["models"].get("pose")
        if pose_model is not None and pose_model == config_pose and pose_model != "oracle":
            pose_model = None  # the run's own pose model (and its dataset_index): the protocol's score
        samples = run.read_samples()
        unknown = next((r["sample_id"] for r in manifest if r["sample_id"] not in samples), None)
        if unknown is not None:
            raise SpbenchError(f"{run.manifest_jsonl} lists sample {unknown!r}, which {run.samples_jsonl} does not hold: "
                               "rerun the same `spbench generate` command to rewrite both")
        ctx = ScoringContext(run, info, samples, str(state.device), {"pose_model": pose_model, "protocol": protocol})
        return _score(run, info, ctx, manifest, metrics, pose_model, config_pose, state, resolved.schema)


def _score(run: RunFolder, info: dict, ctx, manifest: list[dict], metrics: list[str], pose_model, config_pose, state,
           schema: str | None):
    from spbench.metrics.evaluate import scoring_function
    from spbench.metrics.model_specs import is_diagnostic_model
    from spbench.results.models import generation_weights, model_identity, pose_head_problem
    from spbench.results.intervals import score_interval
    from spbench.results.record import build_record, diagnostic_key

    mine = manifest[state.process_index :: state.num_processes]
    not_applicable = declared(info["method"]["name"], "not_applicable", {})  # e.g. the Real Image row's FID
    results, evaluation, per_image, scoring = {}, {}, [], {}
    for name in metrics:
        key = name
        if name in ("pose", "humansd-pose", "stablepose-pose"):
            used = pose_model if pose_model is not None else config_pose
            if pose_model is not None or is_diagnostic_model(used):
                key = diagnostic_key(name, used)
        if name in not_applicable:
            evaluation[name] = {"skipped": not_applicable[name]}
            continue
        with _progress() as progress:
            evaluator = scoring_function(name)(ctx, mine, progress if state.is_main_process else None)
        evaluator.sync()
        if not state.is_main_process:
            continue
        result = dict(evaluator.compute())
        description = dict(getattr(evaluator, "description", {}) or {})
        description["evaluated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if key != name:
            description.update(metric=name, diagnostic=True)
            result["diagnostic"] = True
        if name == "pose":
            problem = pose_head_problem(description.get("model"), description.get("dataset_index"), schema)
            if problem:
                description["invalid"] = result["invalid"] = problem
                _warn(f"{key} is marked invalid in the record: {problem}")
        if state.is_main_process:  # the headline's bootstrap interval over prompts (spbench.results.intervals)
            with _progress() as progress:
                result["bootstrap"] = score_interval(run.path, key, name, evaluator, info["config"], progress)
        results[key], evaluation[key] = result, description
        if "model" in description:
            scoring[key] = model_identity(description["model"])
        for role, spec in (description.get("extra_models") or {}).items():  # a metric's further models
            scoring[f"{key}.{role}"] = model_identity(spec)
        per_image += [{"metric": key, **r} for r in evaluator.records()]
    if not state.is_main_process:
        return build_record(info, results, evaluation), run.result_json

    old, old_rows = _previous_scores(run, info)
    new_keys = set(results) | set(evaluation)
    all_metrics = {**{k: v for k, v in old.get("metrics", {}).items() if k not in new_keys}, **results}
    all_evaluation = {**{k: v for k, v in old.get("evaluation", {}).items() if k not in new_keys}, **evaluation}
    old_scoring = (old.get("weights") or {}).get("scoring") or {}
    weights = {
        "generation": info.get("weights") if "weights" in info else generation_weights(info.get("models")),
        "scoring": {**{k: v for k, v in old_scoring.items()
                       if k.split(".")[0] in all_evaluation and k.split(".")[0] not in new_keys}, **scoring},
    }
    record = build_record(info, all_metrics, all_evaluation, weights)
    atomic_write_jsonl(run.per_image_jsonl, [r for r in old_rows if r.get("metric") not in new_keys] + per_image)
    atomic_write_json(run.result_json, record)
    return record, run.result_json


def _previous_scores(run: RunFolder, info: dict) -> tuple[dict, list[dict]]:
    """The folder's result.json and per_image.jsonl rows, when they scored the images it holds
    now; ({}, []) otherwise (with a warning when a record is replaced)."""
    import json

    from spbench.results.record import same_images

    try:
        old = json.loads(run.result_json.read_text())
    except FileNotFoundError:
        return {}, []
    except (OSError, ValueError):
        _warn(f"{run.result_json} is not readable JSON: it is replaced by this evaluation's record")
        return {}, []
    if not isinstance(old, dict) or not isinstance(old.get("metrics"), dict) or not same_images(old, info):
        _warn(f"{run.result_json} scored other images or settings: its metrics are replaced, not merged")
        return {}, []
    rows = []
    if run.per_image_jsonl.is_file():
        for line in run.per_image_jsonl.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a damaged line: that metric's rows are rewritten when it is scored again
            if isinstance(row, dict):
                rows.append(row)
    return old, rows


def _warn(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"warning: {message}", style="yellow", markup=False, highlight=False, soft_wrap=True)
