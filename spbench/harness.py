"""The chain behind the CLI: resolve a run, generate it, evaluate it, write its record.

Each step reads and writes plain files in the run folder, so ``spbench generate`` and
``spbench evaluate RUN_DIR`` can run apart and ``spbench run`` is just both.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from spbench.config import load_profile, resolve
from spbench.data.records import Split
from spbench.errors import SpbenchError
from spbench.files import atomic_write_json, atomic_write_jsonl
from spbench.generation.run_folder import RunFolder



@dataclass
class PreparedRun:
    config: dict
    split: Split
    run: RunFolder
    method_cls: type


def prepare(flags: dict, profile: str, sets: list[str], out: str) -> PreparedRun:
    """Resolve config, dataset split and method class; nothing heavy is imported or loaded."""
    from spbench.data.registry import load_split
    from spbench.methods.registry import get_method_class

    d = {k[len("dataset."):]: v for k, v in flags.items() if k.startswith("dataset.")}
    split = load_split(d.get("name") or "sample", d.get("split"), d.get("data_root"), d.get("ann"))
    split = split.limit(d.get("limit"))
    if len(split) == 0:
        raise SpbenchError(f"dataset {split.dataset!r} split {split.name!r} has no usable samples (`spbench data check` shows why)")
    schema = split.samples[0].schema
    config = resolve(load_profile(profile), schema, flags, sets)
    config["dataset"]["name"], config["dataset"]["split"] = split.dataset, split.name
    config["dataset"]["schema"] = schema
    method_cls = get_method_class(config["method"]["name"])
    variant = config["method"]["variant"]
    if variant is not None and variant not in method_cls.variants:
        known = ", ".join(method_cls.variants) or "none"
        raise SpbenchError(f"method {method_cls.name!r} has no variant {variant!r} (variants: {known})")
    if method_cls.fixed_samples is not None:
        config["generation"]["samples"] = method_cls.fixed_samples
    name = "-".join(str(p) for p in (split.dataset, split.name, method_cls.name, variant, config["profile"]["name"]) if p)
    return PreparedRun(config, split, RunFolder(Path(out) / name), method_cls)


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


def limit_cpu_threads(config: dict) -> None:
    """Tiny models on a CPU: one torch thread. Their ops are too small to share, and with another
    busy process on the machine two spinning threads made generation 30x slower (measured:
    0.4 s vs 12 s per image). OMP_NUM_THREADS, when set, wins."""
    import os

    import torch

    if config["profile"]["tiny"] and "OMP_NUM_THREADS" not in os.environ and not torch.cuda.is_available():
        torch.set_num_threads(1)


def is_main_process() -> bool:
    return _state().is_main_process


def generate(prep: PreparedRun) -> dict:
    import torch

    from spbench.generation import engine
    from spbench.methods.base import GenerationSettings, MethodContext

    state = _state()
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
            "num_samples": len(prep.split), "schema": prep.split.samples[0].schema,
            "data_root": prep.split.root, "stats": prep.split.stats,
        },
        "method": {"name": method.name, "variant": cfg["method"]["variant"], "condition": method.condition,
                   "checkpoint": cfg["method"]["checkpoint"]},
        "models": method.identity(),
    }
    if state.is_main_process:
        prep.run.start(cfg, run_info, list(prep.split.samples))
    state.wait_for_everyone()
    settings = GenerationSettings.from_config(cfg["generation"])
    with _progress() as progress:
        counts = engine.generate(prep.run, method, requests, settings, cfg["generation"]["batch_size"], state,
                                 progress if state.is_main_process else None, cfg["generation"]["compile"])
    return counts


def parse_metrics(text: str) -> list[str]:
    from spbench.metrics.evaluate import METRICS

    names = [m.strip() for m in text.split(",") if m.strip()]
    for m in names:
        if m not in METRICS:
            raise SpbenchError(f"unknown metric {m!r} in --metrics (known: {', '.join(METRICS)})")
    if not names:
        raise SpbenchError("--metrics is empty: name at least one of " + ", ".join(METRICS))
    return names


def evaluate(run_dir: str | Path, metrics: list[str], pose_model: str | None = None,
             protocol: str = "all") -> tuple[dict, Path]:
    """Score a finished run folder; writes result.json and per_image.jsonl, returns the record."""
    from spbench.metrics.evaluate import PROTOCOLS, ScoringContext, scoring_function
    from spbench.results.record import build_record

    if protocol not in PROTOCOLS:
        raise SpbenchError(f"unknown --protocol {protocol!r}: use {' or '.join(PROTOCOLS)}")

    state = _state()
    run = RunFolder(run_dir)
    info = run.read_run()
    manifest = run.read_manifest()
    if state.is_main_process:
        run.verify_images(manifest)
    limit_cpu_threads(info["config"])
    ctx = ScoringContext(run, info, run.read_samples(), str(state.device), {"pose_model": pose_model, "protocol": protocol})
    mine = manifest[state.process_index :: state.num_processes]
    results, evaluation, per_image = {}, {}, []
    for name in metrics:
        if name == "fid" and info["method"]["name"] == "real":
            # The real images are FID's reference: their FID is not a result (the paper shows "—").
            evaluation[name] = {"skipped": "not applicable to the Real Image row"}
            continue
        with _progress() as progress:
            evaluator = scoring_function(name)(ctx, mine, progress if state.is_main_process else None)
        evaluator.sync()
        if state.is_main_process:
            results[name] = evaluator.compute()
            evaluation[name] = getattr(evaluator, "description", {})
            per_image += [{"metric": name, **r} for r in evaluator.records()]
    record = build_record(info, results, evaluation)
    if state.is_main_process:
        atomic_write_jsonl(run.per_image_jsonl, per_image)
        atomic_write_json(run.result_json, record)
    return record, run.result_json
