"""What the result commands build: the paper's tables and ablation figures from the result
records found under ``--results`` (`spbench table`, `spbench figures`), and the HTML report of run
folders (`spbench report`). `spbench check`'s body is :func:`spbench.results.check.check_command`.

Each raises :class:`~spbench.errors.SpbenchError` on a user error (the CLI prints it as one line
and exits 2).
"""

from __future__ import annotations

from pathlib import Path

from spbench.results.load import load_records
from spbench.tables.definitions import TABLES


def table_command(results: list[str] | None, table: str = "all", fmt: str = "md") -> str:
    """Tables (``1``, ``2``, ``3`` or ``all``) from the records under ``results`` (default:
    ./spbench-runs when it exists); with no records they show the paper's numbers alone."""
    from spbench.errors import SpbenchError
    from spbench.tables.definitions import get_table
    from spbench.tables.render import render

    every = str(table).lower() == "all"
    if every and fmt.lower() == "csv":
        raise SpbenchError("--format csv writes one table: pass --table 1, 2 or 3")
    ids = list(TABLES) if every else [get_table(table).id]
    records = load_records(results or None)
    if not records:
        _say_no_records(results)
    return "\n".join(render(t, records, fmt) for t in ids)


def _say_no_records(results: list[str] | None) -> None:
    """One line on stderr: no record was found, so the tables hold the paper's numbers alone."""
    from rich.console import Console

    from spbench.results.load import DEFAULT_RESULTS, RECORD_FILE

    if results:
        where = f"no {RECORD_FILE} found under {', '.join(map(str, results))}"
    else:
        where = (f"no {RECORD_FILE} found under ./{DEFAULT_RESULTS[0]}" if Path(DEFAULT_RESULTS[0]).is_dir()
                 else f"no --results given and ./{DEFAULT_RESULTS[0]} does not exist")
    Console(stderr=True).print(f"note: {where}: the tables show the paper's numbers only", markup=False,
                               highlight=False, soft_wrap=True)


def figures_command(results: list[str] | None, out: str | Path) -> list[Path]:
    """Figs. 6–7 as PNGs in ``out`` for the ablations that have records; [] when none has."""
    from spbench.tables.figures import render_figures

    return render_figures(load_records(results or None), out)


def report_command(run_dirs: list[str | Path], out: str | Path = "spbench-report", max_samples: int = 6) -> Path:
    """Write ``out/index.html`` (self-contained) and ``out/figures/*.png``; returns the page."""
    from spbench.report.page import build_report

    return build_report(run_dirs, out, max_samples=max_samples)
