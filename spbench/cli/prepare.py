"""`spbench prepare`: write what another tool needs to make a run's images; and the import step of
`spbench evaluate DIR --name NAME`, which scores such a folder once the images are there."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from spbench.cli.console import console, err_console
from spbench.cli.options import Ann, DataRoot, Dataset, ImagesPerPrompt, Limit, Profile, Seed, Sets, SplitOpt, parameters, takes
from spbench.config import DEFAULTS
from spbench.errors import SpbenchError

Condition = Annotated[list[str], typer.Option(
    "--condition", "-c",
    help="Condition kind(s) to draw for each sample, comma-separated or repeated: openpose (the SP-Ctrl paper's "
         "OpenPose rendering), openpose18 / openpose18-blend (the format the public OpenPose ControlNets and "
         "T2I-Adapter were trained on), spatial-pose (SP-Ctrl's index map); any registered kind.")]
PreparedOut = Annotated[Path, typer.Option(
    "--out", "-o", help="The folder to write (e.g. spbench-runs/my-method, where `spbench table` looks by default).")]
ImportName = Annotated[Optional[str], typer.Option(
    "--name", help="For a folder written by `spbench prepare`: the method name its images are recorded under "
                   "(required there; not the name of one of spbench's methods).")]

# The options of `spbench run` that decide which images are requested (method and sampler aside).
PREPARE = parameters(
    dataset=(Dataset, DEFAULTS["dataset"]["name"]), profile=(Profile, DEFAULTS["profile"]["name"]),
    data_root=(DataRoot, None), ann=(Ann, None), split=(SplitOpt, None), limit=(Limit, None),
    images_per_prompt=(ImagesPerPrompt, None), seed=(Seed, None), sets=(Sets, None),
)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console)


@takes(PREPARE)
def prepare(condition: Condition, out: PreparedOut, **options):
    """Write everything another tool needs to make a run's images; score them with `spbench evaluate`.

    DIR gets requests.jsonl (one row per image: sample_id, k, prompt, negative_prompt, seed, canvas
    and original sizes, the image file to write, the condition files), the condition images
    (conditions/KIND/SAMPLE_ID.png, drawn exactly as spbench's methods draw them), samples.jsonl
    and prepare.json. Make DIR/images/SAMPLE_ID_kK.png with any tool, then score them:

        spbench prepare --dataset ap10k --data-root /data/ap10k --profile paper --condition openpose18 --out spbench-runs/mytool

        (your tool writes spbench-runs/mytool/images/*.png)

        spbench evaluate spbench-runs/mytool --name mytool --metrics pose,clip,fid
    """
    from spbench.generation.prepare import condition_kinds, resolve_prepared, write_prepared

    kinds = condition_kinds(condition)
    flags = {"dataset.name": options["dataset"], "dataset.split": options["split"], "dataset.data_root": options["data_root"],
             "dataset.ann": options["ann"], "dataset.limit": options["limit"],
             "generation.images_per_prompt": options["images_per_prompt"], "generation.seed": options["seed"]}
    prep = resolve_prepared(flags, options["profile"], options["sets"] or [])
    info = write_prepared(prep, kinds, out, _progress)
    canvas = info["protocol"]["canvas"]
    console.print(
        f"prepared folder: {out}  ({info['requests']['count']} images to make: {info['dataset']['num_samples']} samples x "
        f"{info['protocol']['images_per_prompt']}; canvas {canvas['width']}x{canvas['height']}; conditions {', '.join(kinds)})")
    console.print(f"next: write {out}/images/<sample_id>_k<k>.png for every row of {out}/requests.jsonl, then "
                  f"`spbench evaluate {out} --name NAME`")


def import_if_prepared(run_dir: str | Path, name: str | None, metrics: list[str], pose_model: str | None = None,
                       protocol: str | None = None) -> None:
    """Before `spbench evaluate` scores ``run_dir``: a prepared folder (prepare.json) becomes a run of
    method ``name`` (its images checked, those of another size brought to the canvas), once what
    scoring ``metrics`` needs has been checked; any other folder is left as it is, and must not be
    given a name."""
    from spbench.run.prepared import is_prepared

    if not is_prepared(run_dir):
        if name is not None:
            raise SpbenchError(f"--name is for folders written by `spbench prepare`; {run_dir} has no prepare.json "
                               "(a run folder is scored under its own method): leave --name out")
        return
    if name is None:
        raise SpbenchError(f"{run_dir} was written by `spbench prepare`: pass --name NAME, the method name to record "
                           "its images under (e.g. --name my-method)")
    from spbench import harness
    from spbench.generation.prepare import check_import_name, check_prepared_images, import_prepared
    from spbench.run.prepared import PreparedFolder, imported_config

    check_import_name(name)
    config = imported_config(PreparedFolder(run_dir).read_prepare()["config"], name)
    harness.check_scoring(config, metrics, pose_model, protocol, name)  # before any image is read
    if harness.is_main_process():
        run_info = import_prepared(run_dir, name, _progress)  # the bar shows once the images are checked
        resized = run_info["method"]["imported"]["resized"]
        note = f"; {resized['count']} resized to the canvas {resized['to']} (listed in the record)" if resized["count"] else ""
        console.print(f"imported {run_info['method']['imported']['images']} images of {name} from {Path(run_dir) / 'images'}{note}")
    else:
        check_prepared_images(run_dir)  # the same check as the main process's: a bad folder stops all
    from accelerate import PartialState

    PartialState().wait_for_everyone()  # the other processes score what the main one imported
