"""A result record on the terminal: the table `spbench run` and `spbench evaluate` print."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from spbench.metrics.spec import METRIC_SPECS


def record_table(record: dict) -> tuple[Table, list[str]]:
    """The metrics of ``record`` (all images, per k, mean ± std over k) and a line for each
    metric flagged invalid."""
    metrics = record["metrics"]
    ks = sorted({k for m in metrics.values() for k in m.get("per_k", {})}, key=int)
    t = Table(title=f"{record['method']['name']} on {record['dataset']['name']}/{record['dataset']['split']}")
    levels = {b["confidence"] for m in metrics.values() if isinstance(b := m.get("bootstrap"), dict) and "low" in b}
    interval = f"{max(levels) * 100:g}% interval over prompts" if len(levels) == 1 else "interval over prompts"
    for col in ("metric", "all images", interval, *(f"k={k}" for k in ks), "mean ± std over k"):
        t.add_column(col, justify="right")
    flagged = []
    for name, result in metrics.items():
        base, _, model = name.partition("@")  # pose@oracle: a diagnostic score, shown as such
        if result.get("invalid"):
            flagged.append(f"{name}: invalid — {result['invalid']}")
        spec = METRIC_SPECS.get(base)
        for label, key in spec.rows if spec else ():  # the rows the metric's spec declares, headline first
            per_k = result.get("per_k", {})
            spread = ""
            if key == spec.key and result.get("mean_over_k") is not None:
                std = result.get("std_over_k")
                spread = spec.format(result["mean_over_k"]) + (f" ± {std:.2f}" if std is not None else "")
            label += f" @{model} (diagnostic)" if model else ""
            label += " (invalid)" if result.get("invalid") else ""
            ci = result.get("bootstrap") if key == spec.key else None  # spbench.results.intervals
            ci = f"[{spec.format(ci['low'])}, {spec.format(ci['high'])}]" if isinstance(ci, dict) and ci.get("low") is not None else ""
            t.add_row(label, spec.format(result.get(key)), ci, *(spec.format(per_k.get(k, {}).get(key)) for k in ks), spread)
    return t, flagged


def print_record(console: Console, record: dict, path: Path) -> None:
    """The metrics table, the invalid flags, the tiny-model note and where the record is."""
    table, flagged = record_table(record)
    console.print(table)
    for line in flagged:
        console.print(line, style="bold red", markup=False, highlight=False)
    if record.get("tiny"):
        console.print(f"[yellow]{record['note']}[/]")
    console.print(f"result record: {path}")
