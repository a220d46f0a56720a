"""`spbench compare RUN_A RUN_B`: paired differences of two scored runs, with bootstrap intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from spbench.cli.console import console, err_console


def compare(
    run_a: Annotated[Path, typer.Argument(help="The reference run folder (A), scored.")],
    run_b: Annotated[Path, typer.Argument(help="The run compared with it (B), scored on the same split and seeds.")],
    metrics: Annotated[Optional[str], typer.Option(
        help="Comma-separated metric keys to compare, e.g. pose,clip or pose@oracle (default: every metric both records hold).")] = None,
    resamples: Annotated[Optional[int], typer.Option(
        help="Bootstrap resamples (default: run A's evaluation.bootstrap_resamples, 1000).", min=1)] = None,
    seed: Annotated[Optional[int], typer.Option(
        help="Seed of the resampled prompt draws (default: run A's evaluation.bootstrap_seed, 0).", min=0)] = None,
    confidence: Annotated[Optional[float], typer.Option(
        help="Confidence level of the interval, in (0, 1) (default: run A's evaluation.bootstrap_confidence, 0.95).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the comparison as JSON to this file.")] = None,
):
    """Paired difference B − A of each headline metric on the same prompts and seeds, with its bootstrap interval.

    Both runs are resampled on the same draws of prompts (with replacement; a drawn prompt brings
    all its scored images), so the interval is that of the difference itself. The runs must come
    from the same split (content hash) with the same seeds, and each metric must be scored the
    same way. AP metrics are recomputed from the predictions kept in RUN/bootstrap/, FID from the
    Inception features kept there (evaluation.bootstrap_fid_resamples of the draws, or --resamples).

    Example:

        spbench compare runs/ap10k-val-split1-controlnet-paper runs/ap10k-val-split1-spctrl-paper

    A verdict of "B better" or "B worse" means the interval excludes 0.
    """
    from spbench.files import atomic_write_text, dumps
    from spbench.results.compare import compare_runs, comparison_json, comparison_table, reason_lines

    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    with _progress() as progress:
        result = compare_runs(run_a, run_b, names, progress=progress, resamples=resamples, seed=seed,
                              confidence=confidence)
    console.print(comparison_table(result))
    for line in reason_lines(result):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    for note in result.notes:
        err_console.print(f"note: {note}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    if json_out is not None:
        atomic_write_text(json_out, dumps(comparison_json(result), indent=2) + "\n")
        console.print(f"comparison: {json_out}")


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=True)
