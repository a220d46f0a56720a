"""`spbench table`, `check`, `report`, `figures`: what result records and run folders add up to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spbench.cli.console import console
from spbench.cli.options import Results


def table(
    results: Results = None,
    table: Annotated[str, typer.Option("--table", help="1, 2, 3, humansd (HumanSD's protocol), stable-pose (Stable-Pose's and GRPose's version of it), extra (runs outside the paper's rows) or all.")] = "all",
    fmt: Annotated[str, typer.Option("--format", help="md, latex or csv.")] = "md",
    ci: Annotated[bool, typer.Option("--ci", help="Show each of our numbers' bootstrap interval over prompts, as recorded (CSV: ci_low, ci_high columns).")] = False,
):
    """Rebuild the paper's Tables 1–3 from result records: paper | ours | difference per cell.

    Examples:

        spbench table                                   # the paper's numbers, plus any runs in ./spbench-runs

        spbench table --results runs --table 1 --format latex > table1.tex

        spbench table --results runs --table extra --format csv > other-runs.csv   # runs outside the paper's rows

        spbench table --results runs --ci               # ours [low, high]: 95% bootstrap interval over prompts

    Cells from tiny-profile runs are marked †tiny: they check the machinery and are not results.
    Runs of other methods (your own, imported ones, variants without a row) follow in a section of
    their own, one row per method and run folder; records that fill no cell are named on stderr.
    """
    from spbench.tables.build import table_command

    console.print(table_command(results, table, fmt, ci), markup=False, highlight=False, soft_wrap=True)


def check(
    expected: Annotated[Path, typer.Argument(help="YAML/JSON file of expected metrics with tolerances and directions.")],
    results: Results = None,
):
    """Compare result records with expected metrics; exit 0 when all hold, 1 on a regression, 2 on a usage error.

    Example (the project's own CI baseline):

        spbench check results/expected/tiny-sample.yaml --results ci-runs --results ci-oracle
    """
    from spbench.results.check import check_command

    raise typer.Exit(check_command(expected, results, console))


def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders to show side by side.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (index.html + figures/).")] = Path("spbench-report"),
    max_samples: Annotated[int, typer.Option(help="Samples (grid rows) per run.", min=1)] = 6,
):
    """Write a self-contained HTML report: sample grids (condition | k samples), metric table, per-category bars.

    Example:

        spbench report spbench-runs/* --out report
    """
    from spbench.tables.build import report_command

    page = report_command(run_dirs, out, max_samples)
    console.print(f"report: {page}")


def figures(
    results: Results = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNGs.")] = Path("spbench-figures"),
):
    """Draw the paper's ablation Figures 6–7 from the ablation runs that exist (with the paper's values).

    Example:

        spbench figures --results runs --out figures
    """
    from spbench.tables.build import figures_command

    written = figures_command(results, out)
    console.print("\n".join(str(p) for p in written) if written else "no ablation records found: nothing drawn")
