"""`spbench train`: its options are the fields of :class:`~spbench.training.TrainingOptions`,
with the dataclass's types and defaults; this module adds only their help."""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Optional

import typer

from spbench.cli.console import console
from spbench.cli.options import Ann, DataRoot, Dataset, Limit, Method, Profile, Sets, SplitOpt, Variant, parameters, takes
from spbench.training.options import TrainingOptions

# The options `spbench train` offers, in the order --help lists them: a shared declaration, or
# (help, typer.Option keywords). Fields left out (adam_beta1, heatmap_size, ...) keep their defaults.
OPTIONS: dict[str, object] = {
    "method": Method, "variant": Variant, "dataset": Dataset, "profile": Profile, "data_root": DataRoot, "ann": Ann,
    "split": SplitOpt, "limit": Limit,
    "out": ("Output folder: `checkpoint-<step>/`, train.json, steps.jsonl, validation/, logs/.", {"param_decls": ("--out", "-o")}),
    "max_steps": ("Optimiser steps to train (wins over --epochs).", {"min": 1}),
    "epochs": ("Epochs when --max-steps is not given (paper: 800 AP-10K, 300 Human-Art).", {"min": 1}),
    "batch_size": ("Images per step and process (paper: 20 at 512x512).", {"min": 1}),
    "learning_rate": ("AdamW learning rate of the trained model (paper: 1e-5).", {}),
    "kpt_learning_rate": ("Learning rate of the keypoint-token embeddings (official: 0.5).", {}),
    "kpt_lr_decay_epochs": ("Halve the keypoint-token learning rate every N epochs (official: 100).", {"min": 1}),
    "caption_dropout": ("Fraction of captions emptied, for classifier-free guidance (paper: 0.5).", {}),
    "kpt_token_probability": ("Probability a caption gets its visible keypoints' tokens (official: 0.8).", {}),
    "keypoint_tokens": ("Train keypoint tokens (default: on for spctrl and controlnet --variant kcl).",
                        {"param_decls": ("--keypoint-tokens/--no-keypoint-tokens",)}),
    "heatmap_loss": ("Add KCL's heatmap loss (default: on with keypoint tokens).", {"param_decls": ("--heatmap-loss/--no-heatmap-loss",)}),
    "kcl_definition": ("Heatmap loss: official (normalised 64x64 maps, as the released code) or paper (raw maps).", {}),
    "kcl_weight": ("Weight of the heatmap loss (paper: 0.1).", {}),
    "kcl_timesteps": ("LOW,HIGH timesteps where the heatmap loss counts (paper: 250,500).", {}),
    "kcl_source": ("Whose cross-attention the loss reads: controlnet or unet.", {}),
    "kcl_blocks": ("Comma-separated blocks whose attn2 layers are read (paper: down_blocks.2).", {}),
    "kcl_uint8_target_quirk": ("Reproduce the official SP-Ctrl target (0-255 heatmap without /255: near-binary).", {}),
    "checkpointing_steps": ("Save `checkpoint-<step>/` every N steps (the last step is always saved).", {"min": 1}),
    "checkpoints_total_limit": ("Keep only the newest N checkpoints.", {"min": 1}),
    "validation_steps": ("Write validation images every N steps (off by default).", {"min": 1}),
    "validation_samples": ("Samples per validation.", {"min": 1}),
    "resume": ("Continue the run in --out: latest, checkpoint-N, or a checkpoint folder.", {}),
    "mixed_precision": ("auto (fp16 on GPU, no on CPU), no, fp16 or bf16.", {}),
    "gradient_checkpointing": ("Recompute activations during backward to save GPU memory.", {}),
    "report_to": ("none or tensorboard (logs under OUT/logs).", {}),
    "seed": ("Seed of initialisation, data order, noise and caption choices.", {}),
    "num_workers": ("DataLoader workers (only for conditions that need no GPU model).", {"min": 0}),
    "sets": Sets,
}


def _option(field: dataclasses.Field, hint) -> tuple:
    """(annotation, default) of the typer option for one TrainingOptions field."""
    default = field.default
    if isinstance(default, tuple):  # tuples are typed on the command line as "a,b"
        hint, default = str, ",".join(map(str, default))
    if field.name == "sets":  # a list: --set may be repeated
        default = None
    declared = OPTIONS[field.name]
    if not isinstance(declared, tuple):
        return declared, default
    help_text, keywords = declared
    keywords = dict(keywords)
    decls = keywords.pop("param_decls", ())
    if default is None:
        hint = Optional[typing.get_args(hint)[0] if typing.get_args(hint) else hint]
    return Annotated[hint, typer.Option(*decls, help=help_text, **keywords)], default


def _training_parameters():
    fields = {f.name: f for f in dataclasses.fields(TrainingOptions)}
    hints = typing.get_type_hints(TrainingOptions)
    return parameters(**{name: _option(fields[name], hints[name]) for name in OPTIONS})


@takes(_training_parameters())
def train(**options):
    """Train ControlNet, T2I-Adapter, depth/mask ControlNets or SP-Ctrl on frozen SD1.5 with accelerate.

    Examples:

        spbench train -m spctrl -d sample -p tiny --max-steps 20 --batch-size 2 -o train-tiny

        accelerate launch -m spbench train -m spctrl -d ap10k --data-root /data/ap10k --split train-split1 -p paper --epochs 800 --report-to tensorboard -o runs/spctrl

    The checkpoint loads with `spbench run -m spctrl --checkpoint runs/spctrl/checkpoint-N/spctrl`;
    a stopped run continues with the same command plus `--resume latest`.
    """
    from spbench.harness import is_main_process
    from spbench.training import run_training

    options["sets"] = options["sets"] or []
    folder = run_training(TrainingOptions(**options))
    if is_main_process():
        console.print(f"training folder: {folder}")
