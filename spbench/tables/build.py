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


def table_command(results: list[str] | None, table: str = "all", fmt: str = "md", ci: bool = False) -> str:
    """Tables (``1``, ``2``, ``3``, ``extra`` or ``all``) from the records under ``results``
    (default: ./spbench-runs when it exists); with no records they show the paper's numbers alone.

    Runs outside the paper's rows follow the paper's tables in a section of their own
    (:mod:`spbench.tables.extra`; ``extra``: that section alone); every record that fills no cell
    is named on stderr with the reason."""
    from spbench.errors import SpbenchError
    from spbench.tables.definitions import get_table
    from spbench.tables.extra import EXTRA, place_records, render_extra
    from spbench.tables.render import FORMATS, render

    choice = str(table).lower().strip()
    fmt = {"markdown": "md", "tex": "latex"}.get(fmt.lower(), fmt.lower())
    if fmt not in FORMATS:
        raise SpbenchError(f"unknown table format {fmt!r} (use {', '.join(FORMATS)})")
    if choice == "all" and fmt == "csv":
        raise SpbenchError(f"--format csv writes one table: pass --table {', '.join(TABLES)} or {EXTRA}")
    ids = list(TABLES) if choice == "all" else [] if choice == EXTRA else [get_table(table).id]
    records = load_records(results or None)
    if not records:
        _say_no_records(results)
    place = place_records(records, ids)
    for skipped in place.skipped:
        _note(skipped.line())
    parts = [render(t, records, fmt, ci) for t in ids]
    if fmt == "csv" and ids:
        if place.extra:
            _note(f"{len(place.extra)} record(s) of runs outside the paper's rows are not in this CSV: "
                  f"--table {EXTRA} --format csv lists them")
    elif place.extra or not ids:
        parts.append(render_extra(place, fmt, ci))
    return "\n".join(parts)


def _note(line: str) -> None:
    """One line on stderr."""
    from rich.console import Console

    Console(stderr=True).print(f"note: {line}", markup=False, highlight=False, soft_wrap=True)


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
