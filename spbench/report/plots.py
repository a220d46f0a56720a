"""Per-category bar charts of the runs (PNG, matplotlib Agg).

Per-category values come from two places: ``metrics.<name>.per_category`` of a record (CLIP-Score
keeps its category scores there), and the pose metric's per-instance OKS in per_image.jsonl,
averaged per category (the mean OKS of the instances of that category over every k).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from spbench.report.runs import RunView

# Which number of a per-category entry to plot, when the entry is a dict.
ENTRY_KEYS = ("score", "AP", "AP75", "fid", "value")


def record_per_category(run: RunView) -> dict[str, tuple[str, dict[str, float]]]:
    """``{chart id: (title, {category: value})}`` from the record's ``per_category`` blocks."""
    out = {}
    metrics = run.record.data.get("metrics", {}) if run.record else {}
    for name, result in metrics.items():
        per_cat = result.get("per_category") if isinstance(result, dict) else None
        if not isinstance(per_cat, dict) or not per_cat:
            continue
        values, label = {}, name
        for cat, entry in per_cat.items():
            if isinstance(entry, (int, float)):
                values[cat] = float(entry)
            elif isinstance(entry, dict):
                key = next((k for k in ENTRY_KEYS if isinstance(entry.get(k), (int, float))), None)
                if key is not None:
                    values[cat], label = float(entry[key]), f"{name} {key}"
        if values:
            out[label.replace(" ", "-")] = (f"{label} per category", values)
    return out


def pose_oks_per_category(run: RunView) -> dict[str, float]:
    oks: dict[str, list[float]] = {}
    for row in run.per_image():
        if row.get("metric") != "pose":
            continue
        for inst in row.get("instances", []):
            if isinstance(inst.get("oks"), (int, float)):
                oks.setdefault(inst.get("category", "?"), []).append(float(inst["oks"]))
    return {c: statistics.fmean(v) for c, v in sorted(oks.items())}


def category_series(runs: list[RunView]) -> dict[tuple[str, str], tuple[str, dict[str, dict[str, float]]]]:
    """``{(dataset, chart id): (title, {run name: {category: value}})}``: a chart per dataset and metric."""
    charts: dict[tuple[str, str], tuple[str, dict]] = {}
    for run in runs:
        series = record_per_category(run)
        pose = pose_oks_per_category(run)
        if pose:
            series["pose-oks"] = ("pose: mean OKS of the instances per category (per_image.jsonl)", pose)
        for chart_id, (title, values) in series.items():
            charts.setdefault((run.dataset_key, chart_id), (title, {}))[1][run.label or run.name] = values
    return charts


def bar_chart(title: str, by_run: dict[str, dict[str, float]], path: Path, tiny: bool) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories = sorted({c for v in by_run.values() for c in v})
    n = len(by_run)
    height = 0.8 / n
    inches = 1.2 + 0.28 * len(categories) * max(1, n * 0.6) + 0.25 * n
    fig, ax = plt.subplots(figsize=(7.5, inches))
    for i, (run, values) in enumerate(by_run.items()):
        ys = [j + (i - (n - 1) / 2) * height for j in range(len(categories))]
        xs = [values.get(c, 0.0) for c in categories]
        ax.barh(ys, xs, height=height * 0.95, label=run, hatch="//" if tiny else None)
        for y, x, c in zip(ys, xs, categories):
            ax.text(x, y, f" {x:.3g}" if c in values else " n/a", va="center", fontsize=7)
    ax.set_yticks(range(len(categories)), categories, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title + ("\n(tiny-profile runs: not results)" if tiny else ""), fontsize=9)
    ax.margins(x=0.15)
    fig.legend(fontsize=7, loc="lower center", ncol=1)
    fig.tight_layout(rect=(0, (0.15 + 0.2 * n) / inches, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
