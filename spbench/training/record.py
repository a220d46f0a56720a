"""``train.json``: what a training run was (options, resolved config, data, KCL definition) and
how far it got (steps, losses), with the package versions that ran it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from spbench.files import atomic_write_json
from spbench.schema_files import schema_record
from spbench.training import checkpoints as ckpt

TRAIN_RECORD = "train.json"


def write_record(trainer, status: str) -> Path:
    from spbench.results.provenance import provenance

    t, sums = trainer, trainer.sums
    n = max(1, sums["steps"])
    record = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "status": status,
        "method": {"name": t.options.method, "variant": t.options.variant, "condition": t.method.condition,
                   "model_folder": t.trainable.subfolder, "model_class": type(t.trainable.model).__name__},
        "options": t.options.to_dict(),
        "config": t.config,
        "dataset": {"name": t.split.dataset, "split": t.split.name, "hash": t.split.content_hash,
                    "num_samples": len(t.split), "schema": t.schema.name, "data_root": t.split.root,
                    "stats": t.split.stats, **schema_record(t.schema.name)},  # a schema file: path, sha256, definition
        "kcl": kcl_description(t),
        "training": {"steps": t.global_step, "max_steps": t.max_steps, "steps_per_epoch": t.steps_per_epoch,
                     "epochs": -(-t.max_steps // t.steps_per_epoch), "num_processes": t.accelerator.num_processes,
                     "mixed_precision": t.mixed_precision, "device": str(t.device), "resumed_from": t.resumed_from,
                     "checkpoints": [p.name for _, p in ckpt.complete_checkpoints(t.out)]},
        "losses": {"steps": sums["steps"], "last": t.last,
                   "mean": {"loss": sums["loss"] / n, "ldm": sums["ldm"] / n,
                            "ht": sums["ht"] / sums["ht_steps"] if sums["ht_steps"] else None}},
        "provenance": provenance(),
    }
    path = t.out / TRAIN_RECORD
    atomic_write_json(path, record)
    return path


def kcl_description(trainer) -> dict:
    """Which KCL parts ran, and the exact heatmap-loss definition and layers."""
    o = trainer.options
    d = {"keypoint_tokens": trainer.train_tokens, "heatmap_loss": trainer.heatmap_loss}
    if trainer.train_tokens:
        d.update(tokens=list(trainer.schema.tokens), token_probability=o.kpt_token_probability,
                 token_learning_rate=o.kpt_learning_rate, token_lr_decay=o.kpt_lr_decay,
                 token_lr_decay_epochs=o.kpt_lr_decay_epochs)
    if trainer.heatmap_loss:
        layers = trainer.kcl_layers
        d.update(definition=o.kcl_definition, weight=o.kcl_weight, timesteps=list(o.kcl_timesteps),
                 timestep_bounds="inclusive" if o.kcl_definition == "paper" else "exclusive (as the official code)",
                 source=o.kcl_source, blocks=list(o.kcl_blocks), layer=o.kcl_layer,
                 layers=[k.removesuffix(".processor") for k in layers], query_detached=True,
                 uint8_target_quirk=o.kcl_uint8_target_quirk, heatmap_size=o.heatmap_size,
                 heatmap_sigma=o.heatmap_sigma)
    return d


def hparams(options) -> dict:
    """Options as TensorBoard hparams accept them (scalars and strings only)."""
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in options.to_dict().items()}
