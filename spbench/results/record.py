"""The result record (``result.json``): metrics plus everything needed to trust and trace them."""

from __future__ import annotations

from spbench.generation.seeds import SEED_SCHEME
from spbench.results.provenance import provenance

RECORD_VERSION = 1

TINY_NOTE = "tiny random models: these numbers check the machinery and are not results"


def build_record(run_info: dict, metrics: dict, evaluation: dict) -> dict:
    """``run_info`` is run.json (config, dataset, method); ``evaluation`` names the scoring models."""
    config = run_info["config"]
    tiny = bool(config["profile"]["tiny"])
    return {
        "record_version": RECORD_VERSION,
        "run": run_info["run"],
        "dataset": run_info["dataset"],
        "method": run_info["method"],
        "tiny": tiny,
        "note": TINY_NOTE if tiny else None,
        "metrics": metrics,
        "evaluation": evaluation,
        "seeds": {"base": config["generation"]["seed"], "samples_per_prompt": config["generation"]["samples"], "scheme": SEED_SCHEME},
        "models": run_info.get("models", {}),
        "config": config,
        "provenance": provenance(),
    }
