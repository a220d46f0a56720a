"""Options shared by several commands, declared once. Defaults that belong to the run
configuration (steps, seed, images per prompt, ...) are not repeated here: ``None`` means "the
profile's value", and :data:`spbench.config.DEFAULTS` holds the protocol's."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Optional

import typer

from spbench.config import DEFAULTS

Method = Annotated[str, typer.Option("--method", "-m", help="Method to run (`spbench ls` lists them), e.g. controlnet.")]
Dataset = Annotated[str, typer.Option("--dataset", "-d", help="ap10k, humanart, or sample (shipped with spbench).")]
Profile = Annotated[str, typer.Option("--profile", "-p", help="Model profile: tiny (random, offline), paper (real weights), or a YAML file.")]
DataRoot = Annotated[Optional[str], typer.Option(help="Dataset folder (holding annotations/ and the images).")]
Ann = Annotated[Optional[str], typer.Option(help="Annotation JSON to read instead of the split's default file.")]
SplitOpt = Annotated[Optional[str], typer.Option("--split", help="Dataset split, e.g. val-split1 (ap10k), validation (humanart), ap10k or humanart (sample).")]
Limit = Annotated[Optional[int], typer.Option(help="Use only the first N samples of the split.", min=1)]
ImagesPerPrompt = Annotated[Optional[int], typer.Option(
    "--images-per-prompt", "--samples",
    help="Images per prompt (protocol: 3; `generation.images_per_prompt`). `--samples` is the old name of this option.", min=1)]
BatchSize = Annotated[Optional[int], typer.Option(help="Images per model call; does not change the images.", min=1)]
Seed = Annotated[Optional[int], typer.Option(help="Base seed; each image's seed derives from (seed, sample id, k).")]
Steps = Annotated[Optional[int], typer.Option(help="Sampler steps (protocol: UniPC, 50).", min=1)]
Out = Annotated[str, typer.Option("--out", "-o", help="Folder that receives the run folder.")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", help="Override any setting: --set generation.guidance_scale=5 --set models.base=/weights/sd15")]
ScoringSets = Annotated[Optional[list[str]], typer.Option("--set", help="Change a scoring setting for this evaluation only: --set evaluation.humansd.pose_batch=0 --set evaluation.bootstrap_resamples=0 (evaluation.* keys; the images and run.json stay as they are; each metric records the settings it was scored with).")]
Variant = Annotated[Optional[str], typer.Option(help="A named variant of the method (ablation rows).")]
Checkpoint = Annotated[Optional[str], typer.Option(help="Trained weights of the method: a model folder, a hub id, or a `spbench train` `checkpoint-<step>` folder.")]
Metrics = Annotated[Optional[str], typer.Option(help="Comma-separated metrics to compute (default: pose; with --protocol humansd or stable-pose, all four of that protocol's; available: pose, clip, fid, det; diversity: LPIPS and DINOv2 Vendi score over each prompt's images; with --protocol humansd (stable-pose), pose, fid, kid and clip are HumanSD's (Stable-Pose's), humansd (stablepose) names all four; `spbench ls` lists all).")]
Protocol = Annotated[Optional[str], typer.Option(help="Pose-scoring protocol (default: the profile's evaluation.protocol). official: as the official SP-Ctrl evaluation (original image frame, mmpose decoding; README \"Fidelity\"); canvas: spbench's own, in the canvas frame, every image; humansd: HumanSD's metrics (AP/AR, CAP, PCE, FID, KID, CLIPSIM; README \"The HumanSD protocol\") in place of pose, fid and clip; stable-pose: the same metrics as Stable-Pose's and GRPose's code runs them (batches of 4, FID/KID per scene, KID x100), the protocol of GRPose's published numbers.")]
PoseModel = Annotated[Optional[str], typer.Option(help="Pose estimator: hub id, folder, `oracle` (returns the condition pose; scores 100) or `perturbed-oracle[:SEED]` (the condition pose moved by seeded offsets; AP between 0 and 100). Another model than the run's is a diagnostic: its score is stored as `pose@<model>`, beside the run's pose score.")]
RunName = Annotated[Optional[str], typer.Option("--name", help="Name of the run folder under --out (default: `<dataset>-<split>-<method>[-<variant>]-<profile>[-<checkpoint>]`).")]
RunDir = Annotated[Path, typer.Argument(help="A run folder written by `spbench generate` or `spbench run`, or a folder written by `spbench prepare` holding the images (with --name).")]
Results = Annotated[Optional[list[str]], typer.Option("--results", help="Folder(s) searched for result.json (repeatable; default ./spbench-runs).")]


def parameters(**declared: tuple) -> list[inspect.Parameter]:
    """Keyword parameters ``name=(annotation, default)`` for :func:`takes`."""
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
            for name, (annotation, default) in declared.items()]


def takes(*groups: list[inspect.Parameter]):
    """Declare a command's options from shared lists: the decorated function takes the
    parameters of ``groups`` (in order), then its own, and receives the shared ones in
    ``**kwargs``. Typer reads the options from the signature, so each is written once."""

    def wrap(fn):
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for p in inspect.signature(fn, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
        params = [p for group in groups for p in group] + own
        fn.__signature__ = inspect.Signature(params)
        fn.__annotations__ = {p.name: p.annotation for p in params}
        return fn

    return wrap


# The options that choose what a run generates: method, data, sampler settings, output folder.
GENERATION = parameters(
    method=(Method, DEFAULTS["method"]["name"]), dataset=(Dataset, DEFAULTS["dataset"]["name"]),
    profile=(Profile, DEFAULTS["profile"]["name"]), data_root=(DataRoot, None), ann=(Ann, None), split=(SplitOpt, None),
    limit=(Limit, None), images_per_prompt=(ImagesPerPrompt, None), batch_size=(BatchSize, None), seed=(Seed, None),
    steps=(Steps, None), out=(Out, "./spbench-runs"), sets=(Sets, None), variant=(Variant, None),
    checkpoint=(Checkpoint, None),
)
# How a run is scored.
SCORING = parameters(metrics=(Metrics, None), pose_model=(PoseModel, None),
                     protocol=(Protocol, None))
