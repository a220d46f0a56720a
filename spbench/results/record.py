"""The result record (``result.json``): metrics plus everything needed to trust and trace them."""

from __future__ import annotations

from spbench.config import images_per_prompt
from spbench.results.provenance import provenance
from spbench.run.folder import image_settings
from spbench.run.seeds import SEED_SCHEME

RECORD_VERSION = 1

TINY_NOTE = "tiny random models: these numbers check the machinery and are not results"


def build_record(run_info: dict, metrics: dict, evaluation: dict, weights: dict | None = None) -> dict:
    """``run_info`` is run.json (config, dataset, method); ``evaluation`` names the scoring models;
    ``weights`` identifies every model by path or hub id and fingerprint (``generation`` and
    ``scoring``, see :mod:`spbench.results.models`).

    ``tiny`` is true when the profile is tiny or any model the run used is a tiny one;
    ``departures`` lists the settings that depart from the paper's protocol."""
    from spbench.results.protocol import departures

    config = run_info["config"]
    weights = weights or {}
    tiny_models = sorted(f"{part}.{role}" for part, roles in weights.items() for role, w in (roles or {}).items()
                         if isinstance(w, dict) and w.get("tiny"))
    tiny = bool(config["profile"]["tiny"]) or bool(tiny_models)
    scored = {name for name in metrics if "@" not in name}  # name@model: a diagnostic score
    return {
        "record_version": RECORD_VERSION,
        "run": run_info["run"],
        "dataset": run_info["dataset"],
        "method": run_info["method"],
        "tiny": tiny,
        "tiny_models": tiny_models,
        "note": TINY_NOTE if tiny else None,
        "departures": departures(config, (run_info.get("method") or {}).get("name"), sorted(scored),
                                 (metrics.get("pose") or {}).get("protocol")),
        "metrics": metrics,
        "evaluation": evaluation,
        "seeds": {"base": config["generation"]["seed"], "images_per_prompt": images_per_prompt(config), "scheme": SEED_SCHEME},
        "models": run_info.get("models", {}),
        "weights": weights,
        "config": config,
        "provenance": provenance(),
    }


def diagnostic_key(metric: str, model) -> str:
    """Where a diagnostic score lives in ``metrics``: ``pose@oracle``, ``pose@vitpose-plus-huge``
    (no dots, so ``metrics.pose@oracle.AP`` works as a dotted key)."""
    import os
    import re

    name = os.fspath(model.get("model") if isinstance(model, dict) else model).rstrip("/\\")
    if name.startswith((".", "/", "~")) or os.path.exists(name):
        name = os.path.basename(name)
    slug = re.sub(r"[^A-Za-z0-9_+-]+", "-", name).strip("-") or "model"
    return f"{metric}@{slug}"


def same_images(old: dict, run_info: dict) -> bool:
    """Whether a previous record scored the images the run folder holds now (same split content,
    same image settings), so its metrics can stay beside new ones."""
    try:
        return (old["dataset"].get("hash") == run_info["dataset"].get("hash")
                and old["method"] == run_info["method"]
                and image_settings(old["config"], run_info["config"]) == image_settings(run_info["config"])
                and images_per_prompt(old["config"]) == images_per_prompt(run_info["config"]))
    except (KeyError, TypeError, AttributeError):
        return False
