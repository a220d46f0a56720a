"""`spbench data check` and `spbench data show`: look at a dataset split before running on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from spbench.cli.console import console
from spbench.cli.options import Ann, DataRoot, Dataset, SplitOpt
from spbench.config import DEFAULTS

SchemaOpt = Annotated[Optional[str], typer.Option(
    "--schema", help="Keypoint schema: ap10k, coco17 or a schema file (YAML/JSON) for another keypoint set; "
                     "default: the dataset's (as --set dataset.schema=… for run).")]

data_app = typer.Typer(help="Inspect datasets: `data check` summarises, `data show` draws conditions.", no_args_is_help=True)


@data_app.command("check")
def data_check(
    dataset: Dataset = DEFAULTS["dataset"]["name"], split: SplitOpt = None, data_root: DataRoot = None, ann: Ann = None,
    schema: SchemaOpt = None,
):
    """Read a dataset split and summarise it: images, instances, what was dropped and why, split hash.

    Example:

        spbench data check --dataset ap10k --data-root /data/ap10k --ann /data/ap10k/annotations/ap10k-val-split1.json
    """
    from spbench.data.check import data_check_report

    _, renderable = data_check_report(dataset, split, data_root, ann, schema=schema)
    console.print(renderable)


@data_app.command("show")
def data_show(
    dataset: Dataset = DEFAULTS["dataset"]["name"], split: SplitOpt = None, data_root: DataRoot = None, ann: Ann = None,
    schema: SchemaOpt = None,
    limit: Annotated[int, typer.Option(help="Number of samples (rows).", min=1)] = 4,
    canvas: Annotated[int, typer.Option(help="Canvas size in pixels.", min=16)] = DEFAULTS["generation"]["canvas"],
    canvas_mode: Annotated[str, typer.Option(help="stretch or letterbox.")] = DEFAULTS["generation"]["canvas_mode"],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path("spbench-data-show.png"),
):
    """Draw a PNG grid per sample: image | OpenPose | spatial-pose index map | heatmaps.

    Example:

        spbench data show --dataset sample --split humanart --limit 6 --out humanart.png
    """
    from spbench.conditions.show import show_split

    rows = show_split(out, dataset, split, data_root, ann, limit=limit, canvas=canvas, canvas_mode=canvas_mode,
                      schema=schema)
    console.print(f"wrote {out} ({rows} samples)")
