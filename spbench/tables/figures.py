"""Figs. 6–7 (ablations) as PNG bar charts: our records beside the paper's values.

A figure is drawn only when a record of one of its ablation variants exists (and, for Fig. 6,
a record of SP-Ctrl's default, the zero of its differences). Records carry the ablation in
their method variant (``spctrl`` ``text-init``, ``controlnet`` ``kcl-t0-250``, ...), see
:data:`spbench.tables.definitions.FIGURES`. Pose scored with the oracle pose model never counts.
"""

from __future__ import annotations

from pathlib import Path

from spbench.results.load import Loaded
from spbench.tables.definitions import FIGURES, FigureDef, Point, paper_figure_values
from spbench.tables.render import as_loaded, dataset_of, preference, usable

FILE_NAMES = {"6": "fig6-spatial-pose.png", "7": "fig7-keypoint-concepts.png"}


def _best(records: list[Loaded], dataset: str, method: str, variants, key: str) -> Loaded | None:
    """The preferred record of the first variant in ``variants`` that has one with ``key``."""
    for variant in variants:
        found = [r for r in records if dataset_of(r)[0] == dataset and r.method == method
                 and r.variant == variant and usable(r, key)]
        if found:
            return max(found, key=preference)
    return None


def figure_values(fig: FigureDef, records) -> dict[str, dict]:
    """Per point id: ``paper`` value, ``ours`` value (a difference for delta figures), ``tiny``."""
    records = as_loaded(records)
    key = fig.metric.key
    paper = paper_figure_values(fig.id)
    ref = _best(records, fig.dataset, fig.reference[0], (fig.reference[1],), key) if fig.reference else None
    out = {}
    for panel in fig.panels:
        for point in panel.points:
            rec = _best(records, fig.dataset, point.method, point.variants, key)
            ours = rec.metric(key) if rec else None
            if fig.kind == "delta":
                ours = ours - ref.metric(key) if ours is not None and ref else None
            ref_value = paper.get(point.id) or {}
            out[point.id] = {"paper": ref_value.get("value"), "approximate": bool(ref_value.get("approximate")), "ours": ours,
                             "tiny": bool(rec and (rec.tiny or (ref and ref.tiny))),
                             "record": str(rec.path) if rec else None}
    return out


def render_figure(fig: FigureDef, records, out_dir: str | Path) -> Path | None:
    """Draw ``fig`` into ``out_dir``; None unless a record of an ablation variant fills a point
    (the baselines alone, e.g. plain ControlNet, do not make a figure)."""
    values = figure_values(fig, records)
    ablations = [p.id for panel in fig.panels for p in panel.points if p.variants != (None,)]
    if all(values[i]["ours"] is None for i in ablations):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = fig.panels
    widths = [len(p.points) + 0.5 for p in panels]
    f, axes = plt.subplots(1, len(panels), figsize=(1.5 * sum(widths) + 1.5, 3.8),
                           gridspec_kw={"width_ratios": widths}, squeeze=False)
    tiny = any(v["tiny"] for v in values.values() if v["ours"] is not None)
    for ax, panel in zip(axes[0], panels):
        _draw_panel(ax, panel.title, panel.points, values, fig.kind)
    axes[0][0].set_ylabel("pose mAP − SP-Ctrl default" if fig.kind == "delta" else "pose mAP (AP-10K)")
    title = fig.title + ("\n†tiny: tiny-profile records, not results" if tiny else "")
    f.suptitle(title, fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor="0.75"),
               plt.Rectangle((0, 0), 1, 1, facecolor="tab:blue", edgecolor="black" if tiny else "tab:blue", hatch="//" if tiny else None)]
    f.legend(handles, ["paper", "ours" + (" (†tiny)" if tiny else "")], loc="lower right", fontsize=8, ncol=2)
    f.tight_layout(rect=(0, 0.06, 1, 1))
    out = Path(out_dir) / FILE_NAMES[fig.id]
    out.parent.mkdir(parents=True, exist_ok=True)
    f.savefig(out, dpi=120)
    plt.close(f)
    return out


def _draw_panel(ax, title: str, points: tuple[Point, ...], values: dict, kind: str) -> None:
    xs = range(len(points))
    for x, point in zip(xs, points):
        v = values[point.id]
        for dx, value, style, approximate in ((-0.2, v["paper"], {"color": "0.75"}, v["approximate"]),
                                              (0.2, v["ours"], {"color": "tab:blue", "hatch": "//" if v["tiny"] else None}, False)):
            if value is None:
                ax.text(x + dx, 0, "n/a", ha="center", va="top" if kind == "delta" else "bottom", fontsize=7, color="0.4")
                continue
            ax.bar(x + dx, value, width=0.38, **style)
            text = f"≈{value:g}" if approximate else f"{value:+.2f}" if kind == "delta" else f"{value:.2f}"
            ax.text(x + dx, value, text,
                    ha="center", va="bottom" if value >= 0 else "top", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlim(-0.6, len(points) - 0.4)
    ax.set_xticks(list(xs), [p.label for p in points], fontsize=8, rotation=15)
    ax.set_title(title, fontsize=9)
    ax.margins(y=0.2)


def render_figures(records, out_dir: str | Path) -> list[Path]:
    """Every figure that has results, as PNG files in ``out_dir``."""
    return [p for fig in FIGURES.values() if (p := render_figure(fig, records, out_dir)) is not None]
