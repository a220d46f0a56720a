"""The `spbench` command line. Heavy libraries are imported inside commands, so `--help` is quick."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from spbench.errors import SpbenchError

def _console(stderr: bool = False) -> Console:
    """A terminal's own width; into a pipe or file (and COLUMNS unset) no wrapping at rich's
    default 80 columns, so logs and `| grep` see whole lines and tables."""
    import os

    stream = sys.stderr if stderr else sys.stdout
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        terminal = False
    width = None if terminal or os.environ.get("COLUMNS") else 100_000
    return Console(stderr=stderr, width=width)


console = _console()
err_console = _console(stderr=True)

app = typer.Typer(
    name="spbench",
    help=(
        "Benchmark pose-guided text-to-image generation (SP-Ctrl, ControlNet, ...) on AP-10K and Human-Art.\n\n"
        "Quick start, tiny random models on the shipped sample (CPU, about a minute):\n\n"
        "  spbench run --method controlnet --dataset sample --profile tiny\n\n"
        "Real models and data:\n\n"
        "  spbench run --method controlnet --dataset ap10k --data-root /data/ap10k --profile paper"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
data_app = typer.Typer(help="Inspect datasets: `data check` summarises, `data show` draws conditions.", no_args_is_help=True)
app.add_typer(data_app, name="data")

# -- shared options ---------------------------------------------------------------------------
Method = Annotated[str, typer.Option("--method", "-m", help="Method to run (`spbench ls` lists them), e.g. controlnet.")]
Dataset = Annotated[str, typer.Option("--dataset", "-d", help="ap10k, humanart, or sample (shipped with spbench).")]
Profile = Annotated[str, typer.Option("--profile", "-p", help="Model profile: tiny (random, offline), paper (real weights), or a YAML file.")]
DataRoot = Annotated[Optional[str], typer.Option(help="Dataset folder (holding annotations/ and the images).")]
Ann = Annotated[Optional[str], typer.Option(help="Annotation JSON to read instead of the split's default file.")]
SplitOpt = Annotated[Optional[str], typer.Option("--split", help="Dataset split, e.g. val-split1 (ap10k), validation (humanart), ap10k or humanart (sample).")]
Limit = Annotated[Optional[int], typer.Option(help="Use only the first N samples of the split.", min=1)]
Samples = Annotated[Optional[int], typer.Option("--samples", help="Images per prompt (protocol: 3).", min=1)]
BatchSize = Annotated[Optional[int], typer.Option(help="Images per model call; does not change the images.", min=1)]
Seed = Annotated[Optional[int], typer.Option(help="Base seed; each image's seed derives from (seed, sample id, k).")]
Steps = Annotated[Optional[int], typer.Option(help="Sampler steps (protocol: UniPC, 50).", min=1)]
Out = Annotated[str, typer.Option("--out", "-o", help="Folder that receives the run folder.")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", help="Override any setting: --set generation.guidance_scale=5 --set models.base=/weights/sd15")]
Variant = Annotated[Optional[str], typer.Option(help="A named variant of the method (ablation rows).")]
Checkpoint = Annotated[Optional[str], typer.Option(help="Trained weights of the method: a model folder, a hub id, or a `spbench train` `checkpoint-<step>` folder.")]
Metrics = Annotated[str, typer.Option(help="Comma-separated metrics to compute (available: pose, clip, fid, det).")]
Protocol = Annotated[Optional[str], typer.Option(help="Pose-scoring protocol (default: the profile's evaluation.protocol). official: as the official SP-Ctrl evaluation (original image frame, mmpose decoding; README \"Fidelity\"); canvas: spbench's own, in the canvas frame, every image.")]
PoseModel = Annotated[Optional[str], typer.Option(help="Pose estimator: hub id, folder, `oracle` (returns the condition pose; scores 100) or `perturbed-oracle[:SEED]` (the condition pose moved by seeded offsets; AP between 0 and 100). Another model than the run's is a diagnostic: its score is stored as `pose@<model>`, beside the run's pose score.")]
RunName = Annotated[Optional[str], typer.Option("--name", help="Name of the run folder under --out (default: `<dataset>-<split>-<method>[-<variant>]-<profile>[-<checkpoint>]`).")]


def _flags(method, dataset, data_root, ann, split, limit, samples, batch_size, seed, steps, variant, checkpoint) -> dict:
    from spbench.training.checkpoints import model_folder

    return {
        "method.name": method, "method.variant": variant, "method.checkpoint": model_folder(checkpoint),
        "dataset.name": dataset, "dataset.split": split, "dataset.data_root": data_root,
        "dataset.ann": ann, "dataset.limit": limit,
        "generation.samples": samples, "generation.batch_size": batch_size,
        "generation.seed": seed, "generation.steps": steps,
    }


def _generate(method, dataset, profile, data_root, ann, split, limit, samples, batch_size, seed, steps, out, sets, variant, checkpoint,
              check=None, name=None, keep_lock=False):
    from spbench import harness

    prep = harness.prepare(
        _flags(method, dataset, data_root, ann, split, limit, samples, batch_size, seed, steps, variant, checkpoint),
        profile, sets or [], out, name=name,
    )
    if check is not None:  # what scoring will need, checked before any image is made
        check(prep)
    main_process = harness.is_main_process()
    tiny_models = [v for v in prep.config["models"].values() if isinstance(v, str) and v.startswith("tiny://")]
    if (prep.config["profile"]["tiny"] or tiny_models) and main_process:
        what = "tiny profile" if prep.config["profile"]["tiny"] else "tiny model(s) " + ", ".join(tiny_models)
        err_console.print(f"[yellow]{what}: random models — the images and numbers check the machinery, they are not results[/]")
    counts = harness.generate(prep, keep_lock=keep_lock)
    if main_process:
        console.print(f"run folder: {prep.run.path}  ({counts['requests']} images, {counts['skipped']} already there)")
    return prep


@app.command()
def run(
    method: Method = "controlnet", dataset: Dataset = "sample", profile: Profile = "tiny",
    data_root: DataRoot = None, ann: Ann = None, split: SplitOpt = None, limit: Limit = None,
    samples: Samples = None, batch_size: BatchSize = None, seed: Seed = None, steps: Steps = None,
    out: Out = "./spbench-runs", sets: Sets = None, variant: Variant = None, checkpoint: Checkpoint = None,
    metrics: Metrics = "pose", pose_model: PoseModel = None, protocol: Protocol = None, name: RunName = None,
):
    """Generate and score one method on one dataset; writes images, manifest.jsonl and result.json.

    Examples:

        spbench run --method controlnet --dataset sample --profile tiny

        spbench run -m controlnet -d ap10k --data-root /data/ap10k --profile paper --limit 100

        accelerate launch -m spbench run -m controlnet -d humanart --data-root /data --profile paper

    An interrupted run resumes where it stopped when the same command is run again.
    """
    from spbench import harness

    metric_names = harness.parse_metrics(metrics)

    def check(prep):
        harness.check_scoring(prep.config, metric_names, pose_model, protocol, prep.method_cls.name)

    prep = _generate(method, dataset, profile, data_root, ann, split, limit, samples, batch_size, seed, steps, out, sets, variant, checkpoint,
                     check=check, name=name, keep_lock=True)  # the run folder stays locked through scoring
    record, path = harness.evaluate(prep.run.path, metric_names, pose_model, protocol)
    _print_record(record, path)


@app.command()
def generate(
    method: Method = "controlnet", dataset: Dataset = "sample", profile: Profile = "tiny",
    data_root: DataRoot = None, ann: Ann = None, split: SplitOpt = None, limit: Limit = None,
    samples: Samples = None, batch_size: BatchSize = None, seed: Seed = None, steps: Steps = None,
    out: Out = "./spbench-runs", sets: Sets = None, variant: Variant = None, checkpoint: Checkpoint = None,
    name: RunName = None,
):
    """Generate images only (score them later with `spbench evaluate RUN_DIR`).

    Example:

        spbench generate --method controlnet --dataset sample --profile tiny --steps 10 --out runs
    """
    _generate(method, dataset, profile, data_root, ann, split, limit, samples, batch_size, seed, steps, out, sets, variant, checkpoint,
              name=name)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `spbench generate` or `spbench run`.")],
    metrics: Metrics = "pose",
    pose_model: PoseModel = None,
    protocol: Protocol = None,
):
    """Score a run folder and write its result.json.

    Examples:

        spbench evaluate spbench-runs/sample-ap10k-controlnet-tiny

        spbench evaluate RUN_DIR --metrics pose --pose-model oracle      # sanity check: AP 100.0

        spbench evaluate RUN_DIR --pose-model /weights/vitpose-plus-huge
    """
    from spbench import harness

    record, path = harness.evaluate(run_dir, harness.parse_metrics(metrics), pose_model, protocol)
    _print_record(record, path)


@data_app.command("check")
def data_check(
    dataset: Dataset = "sample", split: SplitOpt = None, data_root: DataRoot = None, ann: Ann = None,
):
    """Read a dataset split and summarise it: images, instances, what was dropped and why, split hash.

    Example:

        spbench data check --dataset ap10k --data-root /data/ap10k --ann /data/ap10k/annotations/ap10k-val-split1.json
    """
    from spbench.data.check import data_check_report

    _, renderable = data_check_report(dataset, split, data_root, ann)
    console.print(renderable)


@data_app.command("show")
def data_show(
    dataset: Dataset = "sample", split: SplitOpt = None, data_root: DataRoot = None, ann: Ann = None,
    limit: Annotated[int, typer.Option(help="Number of samples (rows).", min=1)] = 4,
    canvas: Annotated[int, typer.Option(help="Canvas size in pixels.", min=16)] = 512,
    canvas_mode: Annotated[str, typer.Option(help="stretch or letterbox.")] = "stretch",
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path("spbench-data-show.png"),
):
    """Draw a PNG grid per sample: image | OpenPose | spatial-pose index map | heatmaps.

    Example:

        spbench data show --dataset sample --split humanart --limit 6 --out humanart.png
    """
    from PIL import Image

    from spbench.canvas import CanvasTransform
    from spbench.conditions.grid import condition_grid
    from spbench.data.registry import load_split
    from spbench.files import atomic_save_image

    s = load_split(dataset, split, data_root, ann).limit(limit)
    from spbench.data.registry import check_image_files

    check_image_files(s, ann)
    rows = []
    for sample in s.samples:
        transform = CanvasTransform.fit(sample.width, sample.height, canvas, canvas_mode)
        with Image.open(s.image_path(sample)) as im:
            rows.append((sample, transform, im.convert("RGB")))
    atomic_save_image(out, condition_grid(rows))
    console.print(f"wrote {out} ({len(rows)} samples)")


@app.command()
def train(
    method: Method = "controlnet", variant: Variant = None, dataset: Dataset = "sample", profile: Profile = "tiny",
    data_root: DataRoot = None, ann: Ann = None, split: SplitOpt = None, limit: Limit = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder: `checkpoint-<step>/`, train.json, steps.jsonl, validation/, logs/.")] = "./spbench-train",
    max_steps: Annotated[Optional[int], typer.Option(help="Optimiser steps to train (wins over --epochs).", min=1)] = None,
    epochs: Annotated[int, typer.Option(help="Epochs when --max-steps is not given (paper: 800 AP-10K, 300 Human-Art).", min=1)] = 1,
    batch_size: Annotated[int, typer.Option(help="Images per step and process (paper: 20 at 512x512).", min=1)] = 20,
    learning_rate: Annotated[float, typer.Option(help="AdamW learning rate of the trained model (paper: 1e-5).")] = 1e-5,
    kpt_learning_rate: Annotated[float, typer.Option(help="Learning rate of the keypoint-token embeddings (official: 0.5).")] = 0.5,
    kpt_lr_decay_epochs: Annotated[int, typer.Option(help="Halve the keypoint-token learning rate every N epochs (official: 100).", min=1)] = 100,
    caption_dropout: Annotated[float, typer.Option(help="Fraction of captions emptied, for classifier-free guidance (paper: 0.5).")] = 0.5,
    kpt_token_probability: Annotated[float, typer.Option(help="Probability a caption gets its visible keypoints' tokens (official: 0.8).")] = 0.8,
    keypoint_tokens: Annotated[Optional[bool], typer.Option("--keypoint-tokens/--no-keypoint-tokens", help="Train keypoint tokens (default: on for spctrl and controlnet --variant kcl).")] = None,
    heatmap_loss: Annotated[Optional[bool], typer.Option("--heatmap-loss/--no-heatmap-loss", help="Add KCL's heatmap loss (default: on with keypoint tokens).")] = None,
    kcl_definition: Annotated[str, typer.Option(help="Heatmap loss: official (normalised 64x64 maps, as the released code) or paper (raw maps).")] = "official",
    kcl_weight: Annotated[float, typer.Option(help="Weight of the heatmap loss (paper: 0.1).")] = 0.1,
    kcl_timesteps: Annotated[str, typer.Option(help="LOW,HIGH timesteps where the heatmap loss counts (paper: 250,500).")] = "250,500",
    kcl_source: Annotated[str, typer.Option(help="Whose cross-attention the loss reads: controlnet or unet.")] = "controlnet",
    kcl_blocks: Annotated[str, typer.Option(help="Comma-separated blocks whose attn2 layers are read (paper: down_blocks.2).")] = "down_blocks.2",
    kcl_uint8_target_quirk: Annotated[bool, typer.Option(help="Reproduce the official SP-Ctrl target (0-255 heatmap without /255: near-binary).")] = False,
    checkpointing_steps: Annotated[int, typer.Option(help="Save `checkpoint-<step>/` every N steps (the last step is always saved).", min=1)] = 500,
    checkpoints_total_limit: Annotated[Optional[int], typer.Option(help="Keep only the newest N checkpoints.", min=1)] = None,
    validation_steps: Annotated[Optional[int], typer.Option(help="Write validation images every N steps (off by default).", min=1)] = None,
    validation_samples: Annotated[int, typer.Option(help="Samples per validation.", min=1)] = 2,
    resume: Annotated[Optional[str], typer.Option(help="Continue the run in --out: latest, checkpoint-N, or a checkpoint folder.")] = None,
    mixed_precision: Annotated[str, typer.Option(help="auto (fp16 on GPU, no on CPU), no, fp16 or bf16.")] = "auto",
    gradient_checkpointing: Annotated[bool, typer.Option(help="Recompute activations during backward to save GPU memory.")] = False,
    report_to: Annotated[str, typer.Option(help="none or tensorboard (logs under OUT/logs).")] = "none",
    seed: Annotated[int, typer.Option(help="Seed of initialisation, data order, noise and caption choices.")] = 0,
    num_workers: Annotated[int, typer.Option(help="DataLoader workers (only for conditions that need no GPU model).", min=0)] = 0,
    sets: Sets = None,
):
    """Train ControlNet, T2I-Adapter, depth/mask ControlNets or SP-Ctrl on frozen SD1.5 with accelerate.

    Examples:

        spbench train -m spctrl -d sample -p tiny --max-steps 20 --batch-size 2 -o train-tiny

        accelerate launch -m spbench train -m spctrl -d ap10k --data-root /data/ap10k --split train-split1 -p paper --epochs 800 --report-to tensorboard -o runs/spctrl

    The checkpoint loads with `spbench run -m spctrl --checkpoint runs/spctrl/checkpoint-N/spctrl`;
    a stopped run continues with the same command plus `--resume latest`.
    """
    from spbench.harness import is_main_process
    from spbench.training import TrainingOptions, run_training

    options = {k: v for k, v in locals().items() if k not in ("TrainingOptions", "run_training", "is_main_process")}
    options["sets"] = sets or []
    folder = run_training(TrainingOptions(**options))
    if is_main_process():
        console.print(f"training folder: {folder}")


convert_app = typer.Typer(help="Convert checkpoints from other toolkits into folders spbench loads.", no_args_is_help=True)
app.add_typer(convert_app, name="convert")


@convert_app.command("vitpose")
def convert_vitpose(
    checkpoint: Annotated[Path, typer.Argument(help="mmpose / ViTPose .pth checkpoint.")],
    out_dir: Annotated[Path, typer.Argument(help="New folder for the transformers VitPoseForPoseEstimation.")],
    head: Annotated[Optional[str], typer.Option(help="ViTPose++: which dataset head to keep (coco, aic, mpii, ap10k, apt36k, wholebody, or an index).")] = None,
    image_size: Annotated[str, typer.Option(help="Input size HxW.")] = "256x192",
    num_keypoints: Annotated[Optional[int], typer.Option(help="Check the kept head predicts this many keypoints.")] = None,
    num_heads: Annotated[Optional[int], typer.Option(help="Attention heads, for backbones other than ViTPose-S/B/L/H.")] = None,
):
    """Turn an mmpose ViTPose / ViTPose++ checkpoint into a folder `--pose-model` loads (safe unpickling only).

    Examples:

        spbench convert vitpose vitpose+_huge.pth weights/vitpose-plus-huge-ap10k --head ap10k

        spbench convert vitpose td-hm_ViTPose-huge_8xb64-210e_humanart-256x192.pth weights/vitpose-huge-humanart
    """
    from spbench.models.convert_vitpose import convert_mmpose_vitpose

    try:
        h, w = (int(v) for v in image_size.lower().split("x"))
    except ValueError:
        raise SpbenchError(f"--image-size {image_size!r}: expected HxW, e.g. 256x192") from None
    head_arg = int(head) if head is not None and head.isdigit() else head
    summary = convert_mmpose_vitpose(str(checkpoint), str(out_dir), head=head_arg, num_keypoints=num_keypoints,
                                     image_size=(h, w), num_heads=num_heads)
    console.print(f"wrote {out_dir}: {summary.get('num_keypoints')} keypoints, {summary.get('num_experts')} expert(s)"
                  + (f"; score with dataset_index {summary['dataset_index']}" if summary.get("dataset_index") is not None else ""))


@app.command("ls")
def list_things():
    """List methods, datasets, profiles and metrics."""
    from spbench.config import load_profile, profile_names
    from spbench.data.registry import DATASETS
    from spbench.metrics.evaluate import METRICS
    from spbench.methods.registry import get_method_class, method_names

    t = Table(title="methods")
    for col in ("name", "condition", "variants", "description"):
        t.add_column(col)
    for name in method_names():
        try:
            cls = get_method_class(name)
        except SpbenchError as e:  # a broken plug-in must not hide the others
            t.add_row(name, "?", "?", f"[red]{e}[/]")
            continue
        t.add_row(name, cls.condition, ", ".join(cls.variants) or "—", cls.description)
    console.print(t)
    t = Table(title="datasets")
    for col in ("name", "schema", "splits", "description"):
        t.add_column(col)
    for name, info in DATASETS.items():
        t.add_row(name, info.schema, ", ".join(info.splits), info.description)
    console.print(t)
    t = Table(title="profiles")
    t.add_column("name")
    t.add_column("description")
    for name in profile_names():
        t.add_row(name, load_profile(name).get("description", ""))
    console.print(t)
    console.print("metrics: " + ", ".join(METRICS))


Results = Annotated[Optional[list[str]], typer.Option("--results", help="Folder(s) searched for result.json (repeatable; default ./spbench-runs).")]


@app.command()
def table(
    results: Results = None,
    table: Annotated[str, typer.Option("--table", help="1, 2, 3 or all.")] = "all",
    fmt: Annotated[str, typer.Option("--format", help="md, latex or csv.")] = "md",
):
    """Rebuild the paper's Tables 1–3 from result records: paper | ours | difference per cell.

    Examples:

        spbench table                                   # the paper's numbers, plus any runs in ./spbench-runs

        spbench table --results runs --table 1 --format latex > table1.tex

    Cells from tiny-profile runs are marked †tiny: they check the machinery and are not results.
    """
    from spbench.tables.cli import table_command

    console.print(table_command(results, table, fmt), markup=False, highlight=False, soft_wrap=True)


@app.command()
def check(
    expected: Annotated[Path, typer.Argument(help="YAML/JSON file of expected metrics with tolerances and directions.")],
    results: Results = None,
):
    """Compare result records with expected metrics; exit 0 when all hold, 1 on a regression, 2 on a usage error.

    Example (the project's own CI baseline):

        spbench check results/expected/tiny-sample.yaml --results ci-runs --results ci-oracle
    """
    from spbench.tables.cli import check_command

    raise typer.Exit(check_command(expected, results, console))


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders to show side by side.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (index.html + figures/).")] = Path("spbench-report"),
    max_samples: Annotated[int, typer.Option(help="Samples (grid rows) per run.", min=1)] = 6,
):
    """Write a self-contained HTML report: sample grids (condition | k samples), metric table, per-category bars.

    Example:

        spbench report spbench-runs/* --out report
    """
    from spbench.tables.cli import report_command

    page = report_command(run_dirs, out, max_samples)
    console.print(f"report: {page}")


@app.command()
def figures(
    results: Results = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNGs.")] = Path("spbench-figures"),
):
    """Draw the paper's ablation Figures 6–7 from the ablation runs that exist (with the paper's values).

    Example:

        spbench figures --results runs --out figures
    """
    from spbench.tables.cli import figures_command

    written = figures_command(results, out)
    console.print("\n".join(str(p) for p in written) if written else "no ablation records found: nothing drawn")


# What the metrics table shows for each metric: (label, key in the metric's result).
HEADLINES = {
    "pose": [("pose AP", "AP"), ("pose AP50", "AP50"), ("pose AP75", "AP75")],
    "clip": [("CLIP-Score", "score")],
    "fid": [("FID", "fid")],
    "det": [("det AP75", "AP75"), ("det AP", "AP"), ("det AP50", "AP50")],
}


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _print_record(record: dict, path: Path) -> None:
    from spbench.harness import is_main_process

    if not is_main_process():
        return
    metrics = record["metrics"]
    ks = sorted({k for m in metrics.values() for k in m.get("per_k", {})}, key=int)
    t = Table(title=f"{record['method']['name']} on {record['dataset']['name']}/{record['dataset']['split']}")
    for col in ("metric", "all images", *(f"k={k}" for k in ks), "mean ± std over k"):
        t.add_column(col, justify="right")
    flagged = []
    for name, result in metrics.items():
        base, _, model = name.partition("@")  # pose@oracle: a diagnostic score, shown as such
        if result.get("invalid"):
            flagged.append(f"{name}: invalid — {result['invalid']}")
        for label, key in HEADLINES.get(base, []):
            per_k = result.get("per_k", {})
            spread = ""
            if key == HEADLINES[base][0][1] and result.get("mean_over_k") is not None:
                std = result.get("std_over_k")
                spread = _fmt(result["mean_over_k"]) + (f" ± {std:.2f}" if std is not None else "")
            label += f" @{model} (diagnostic)" if model else ""
            label += " (invalid)" if result.get("invalid") else ""
            t.add_row(label, _fmt(result.get(key)), *(_fmt(per_k.get(k, {}).get(key)) for k in ks), spread)
    console.print(t)
    for line in flagged:
        console.print(line, style="bold red", markup=False, highlight=False)
    if record.get("tiny"):
        console.print(f"[yellow]{record['note']}[/]")
    console.print(f"result record: {path}")


def _usage_error_line(e) -> str:
    """A click usage error (bad option value, unknown option, ...) as one line, not typer's box."""
    message = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    hint = f" (`{ctx.command_path} --help` lists the options)" if ctx is not None else ""
    return f"error: {message}{hint}"


def _click_errors() -> tuple[type, ...]:
    """The exception base of click's errors: typer's vendored click and click itself."""
    bases: list[type] = [typer.Abort]
    if hasattr(typer, "TyperException"):
        bases.append(typer.TyperException)
    try:
        import click

        bases += [click.ClickException, click.exceptions.Abort]
    except ImportError:
        pass
    return tuple(bases)


INTERRUPTED = "interrupted: finished images are kept; run the same command again to resume"


def main() -> None:
    try:
        # Not standalone: click's usage errors come here, to be printed as one line.
        code = app(standalone_mode=False)
    except SpbenchError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except _click_errors() as e:
        name = type(e).__name__
        if name == "NoArgsIsHelpError":  # the help was printed already
            sys.exit(getattr(e, "exit_code", 2))
        if name == "Abort" or not hasattr(e, "format_message"):
            err_console.print("aborted", markup=False, highlight=False)
            sys.exit(1)
        err_console.print(_usage_error_line(e), markup=False, highlight=False, soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        err_console.print(INTERRUPTED, markup=False, highlight=False, soft_wrap=True)
        sys.exit(130)
    if code == 130:  # typer turns Ctrl-C into exit status 130 without a word
        err_console.print(INTERRUPTED, markup=False, highlight=False, soft_wrap=True)
    sys.exit(code if isinstance(code, int) else 0)
