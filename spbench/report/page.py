"""`spbench report RUN_DIR…`: one self-contained HTML page (images embedded as base64 PNG).

The page holds the metric table of the runs, per-category bar charts where per-category values
exist, Figs. 6–7 when the runs carry their ablation variants, and sample grids in the manner of
the paper's Fig. 5: one block per run (method), one row per sample: reference image, condition,
then the k generated images. The charts and one grid PNG per run are also written to OUT/figures.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import re
from pathlib import Path

from spbench.errors import SpbenchError
from spbench.files import atomic_write_text
from spbench.metrics.spec import METRIC_SPECS
from spbench.report.cross_species import cross_species_section
from spbench.report.diversity import diversity_table
from spbench.report.runs import RunView, read_run

# The report's metric columns, in this order: (headline key, label) from each metric's spec.
HEADLINE = {n: (METRIC_SPECS[n].key, METRIC_SPECS[n].label) for n in ("pose", "fid", "clip", "det")}
CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:13px}
th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid td{padding:2px}.grid img{display:block}
.prompt{max-width:220px;font-size:12px;color:#444}
.tiny{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px;margin:1em 0}
.muted{color:#888}
"""


def _data_uri(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(src: str, alt: str) -> str:
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _load_tile(path: Path, size: int, kind: str | None = None, canvas: dict | None = None):
    """An image scaled to ``size`` wide. Spatial-pose index maps are coloured so they can be seen;
    with ``canvas`` (a manifest row's transform) the reference image is put on the canvas first,
    so it lines up with the condition and the samples."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        if kind == "spatial-pose" and im.mode in ("L", "P", "I"):
            from spbench.conditions.spatial_pose import index_map_to_rgb

            im = Image.fromarray(index_map_to_rgb(np.asarray(im)))
        if canvas:
            from spbench.canvas import CanvasTransform, image_to_canvas

            im = image_to_canvas(im, CanvasTransform(**canvas))
        im = im.convert("RGB")
        h = max(1, round(im.height * size / im.width))
        resample = Image.NEAREST if kind else Image.LANCZOS
        return im.resize((size, h), resample)


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.2f}"


def metric_table(runs: list[RunView]) -> str:
    heads = ["run", "dataset / split", "method", "profile", "images"] + [label for _, label in HEADLINE.values()]
    rows = []
    for r in runs:
        rec = r.record
        cells = [html.escape(r.label), html.escape(f"{r.info['dataset']['name']} / {r.info['dataset'].get('split')}"),
                 html.escape(r.title.split(" — ")[0]), html.escape(_profile(r)),
                 str(sum(len(v) for v in r.images.values()))]
        for name, (key, _) in HEADLINE.items():
            result = (rec.data["metrics"].get(name) if rec else None) or {}
            text = METRIC_SPECS[name].format(result.get(key)) if result else "—"
            flag = (rec.diagnostic(name) and "diagnostic") or (rec.invalid(name) and "invalid") if rec and result else None
            if flag:  # not the method's score: say so instead of showing it as one
                why = rec.diagnostic(name) or rec.invalid(name)
                text = f'<s>{text}</s> <b title="{html.escape(why)}">{flag}</b>'
            if result.get("mean_over_k") is not None:
                std = result.get("std_over_k")
                text += f'<br><span class="muted">k: {result["mean_over_k"]:.2f}' + (f" ± {std:.2f}" if std is not None else "") + "</span>"
            cells.append(text)
        if not rec:
            cells[-1] += ' <span class="muted">(not evaluated)</span>'
        if r.departures and not r.tiny:
            cells[3] += (' ¶settings<br><span class="muted">' + html.escape("; ".join(r.departures)) + "</span>")
        rows.append("<tr>" + "".join(f'<td class="num">{c}</td>' if i >= 4 else f"<td>{c}</td>" for i, c in enumerate(cells)) + "</tr>")
    table = "<table><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>" + "".join(rows) + "</table>"
    return table + _diagnostics(runs) + _notes(runs)


def _diagnostics(runs: list[RunView]) -> str:
    """Diagnostic scores (``pose@oracle``…) listed apart from the metric table: they check the metric."""
    items = []
    for r in runs:
        metrics = r.record.data.get("metrics", {}) if r.record else {}
        for key, result in metrics.items():
            base = key.split("@")[0]
            if "@" not in key or not isinstance(result, dict) or base not in HEADLINE:
                continue
            value = METRIC_SPECS[base].format(result.get(HEADLINE[base][0]))
            model = r.record.evaluation(key).get("model")
            invalid = r.record.invalid(key)
            items.append(f"<li>{html.escape(r.label)}: {html.escape(key)} {HEADLINE[base][1]} {value}"
                         + (f" (model {html.escape(str(model))})" if model else "")
                         + (f" — <b>invalid</b>: {html.escape(invalid)}" if invalid else "") + "</li>")
    if not items:
        return ""
    return ("<p class=\"muted\">Diagnostic scores — not results: they check the metric (the oracle pose model returns "
            "the condition pose), not the method.</p><ul class=\"muted\">" + "".join(items) + "</ul>")


def _notes(runs: list[RunView]) -> str:
    lines = []
    if any(r.departures and not r.tiny for r in runs):
        lines.append("¶settings: the run's settings depart from the paper's protocol (listed under the profile); "
                     "its numbers are not comparable with the paper's.")
    for r in runs:
        for name in HEADLINE:
            why = r.record.invalid(name) if r.record and name in r.record.data.get("metrics", {}) else None
            if why:
                lines.append(f"{r.label}: {name} is marked invalid: {why}")
    return "".join(f'<p class="muted">{html.escape(line)}</p>' for line in lines)


def _profile(run: RunView) -> str:
    name = str(run.info["config"]["profile"]["name"])
    return name + (" (†tiny)" if run.tiny and name != "tiny" else "")


def _chosen_samples(runs: list[RunView], limit: int) -> list[str]:
    """The first ``limit`` samples, those that every run generated first, in the split's order."""
    ids = []
    for r in runs:
        ids += [s for s in (list(r.samples) or list(r.images)) if s in r.images and s not in ids]
    ids.sort(key=lambda s: -sum(s in r.images for r in runs))  # stable: keeps the split's order
    return ids[:limit]


def sample_block(run: RunView, sample_ids: list[str], size: int, figures: Path) -> str:
    ks = sorted({k for s in sample_ids for k in run.images.get(s, {})})
    heads = ["sample", "reference", "condition"] + [f"k={k}" for k in ks]
    rows, grid_rows = [], []
    for sid in sample_ids:
        shots = run.images.get(sid, {})
        first = next(iter(shots.values()), {})
        cond = first.get("condition") or {}
        tiles = [(run.reference_image(sid), None, first.get("canvas"), "reference image"),
                 (run.path / cond["file"] if cond.get("file") else None, cond.get("kind", "condition"), None, f"condition ({cond.get('kind')})")]
        tiles += [(run.path / shots[k]["file"] if k in shots else None, None, None, f"k={k}") for k in ks]
        cells, loaded = [], []
        for path, kind, canvas, alt in tiles:
            if path is None or not path.is_file():
                cells.append('<td class="muted">missing</td>')
                loaded.append(None)
                continue
            tile = _load_tile(path, size, kind, canvas)
            loaded.append(tile)
            cells.append(f"<td>{_img(_data_uri(tile), f'{sid} {alt}')}</td>")
        prompt = html.escape(first.get("prompt", ""))
        rows.append(f'<tr><td class="prompt"><b>{html.escape(sid)}</b><br>{prompt}</td>' + "".join(cells) + "</tr>")
        grid_rows.append(loaded)
    _write_grid(heads[1:], grid_rows, size, figures / f"grid-{_slug(run.label)}.png")
    return ('<table class="grid"><tr>' + "".join(f"<th>{h}</th>" for h in heads) + "</tr>" + "".join(rows) + "</table>")


def _write_grid(heads: list[str], rows: list[list], size: int, path: Path) -> None:
    """The block as one PNG: a header line, then tiles side by side; missing tiles grey."""
    from PIL import Image, ImageDraw, ImageFont

    if not rows:
        return
    height = max((t.height for row in rows for t in row if t is not None), default=size)
    top = 20
    grid = Image.new("RGB", (len(heads) * (size + 4), top + len(rows) * (height + 4)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for j, head in enumerate(heads):
        draw.text((j * (size + 4) + 4, 4), head, fill=(0, 0, 0), font=font)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            grid.paste(tile if tile is not None else Image.new("RGB", (size, height), (200, 200, 200)),
                       (j * (size + 4), top + i * (height + 4)))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _png_section(paths: list[Path], alt: str) -> str:
    out = []
    for p in paths:
        out.append(f"<figure>{_img('data:image/png;base64,' + base64.b64encode(p.read_bytes()).decode('ascii'), f'{alt} {p.name}')}"
                   f"<figcaption class=\"muted\">{html.escape(p.name)}</figcaption></figure>")
    return "".join(out)


def build_report(run_dirs: list[str | Path], out: str | Path, max_samples: int = 6, size: int = 160) -> Path:
    """Write ``out/index.html`` (and ``out/figures/*.png``); returns the page's path."""
    from spbench.report.plots import bar_chart, category_series
    from spbench.tables.figures import render_figures

    if not run_dirs:
        raise SpbenchError("spbench report: name at least one run folder")
    runs = [read_run(d) for d in run_dirs]
    names = [r.name for r in runs]
    for r in runs:  # runs from different --out folders may share a name
        r.label = r.name if names.count(r.name) == 1 else f"{r.path.parent.name}/{r.name}"
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    tiny = any(r.tiny for r in runs)
    parts = [f"<h1>spbench report</h1><p class=\"muted\">{len(runs)} run(s), written "
             f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}</p>"]
    if tiny:
        parts.append('<div class="tiny">†tiny: tiny-profile runs use random models; their images and numbers check '
                     "the machinery and are not results.</div>")
    for r in runs:
        for problem in r.problems:
            parts.append(f'<p class="tiny">{html.escape(r.name)}: {html.escape(problem)}</p>')
    parts += ["<h2>Metrics</h2>", metric_table(runs), diversity_table(runs), cross_species_section(runs)]

    charts = []
    for (dataset, chart_id), (title, by_run) in category_series(runs).items():
        chart_tiny = any(r.tiny for r in runs if r.label in by_run)
        charts.append(bar_chart(f"{dataset}: {title}", by_run, figures / f"bars-{_slug(dataset)}-{_slug(chart_id)}.png", chart_tiny))
    if charts:
        parts += ["<h2>Per category</h2>", _png_section(charts, "per-category bars")]
    ablations = render_figures([r.record for r in runs if r.record], figures)
    if ablations:
        parts += ["<h2>Ablations (paper Figs. 6–7)</h2>", _png_section(ablations, "ablation figure")]

    parts.append("<h2>Samples</h2>")
    by_dataset: dict[str, list[RunView]] = {}
    for r in runs:
        by_dataset.setdefault(r.dataset_key, []).append(r)
    for dataset, group in by_dataset.items():
        ids = _chosen_samples(group, max_samples)
        parts.append(f"<h3>{html.escape(dataset)}</h3>")
        for r in group:
            parts += [f"<h4>{html.escape(r.title)}{' †tiny' if r.tiny else ''} <span class=\"muted\">({html.escape(str(r.path))})</span></h4>",
                      sample_block(r, ids, size, figures)]
    attention = [(r, sorted((r.path / "attention").glob("*.png"))[:max_samples]) for r in runs]
    if any(grids for _, grids in attention):  # written by `spbench attention RUN_DIR --sample ID`
        parts.append("<h2>Cross-attention of keypoint tokens</h2>")
        for r, grids in attention:
            if grids:
                parts += [f"<h4>{html.escape(r.title)}{' †tiny' if r.tiny else ''}</h4>", _png_section(grids, "attention maps")]
    page = out / "index.html"
    _write_page(page, "<!doctype html><html><head><meta charset=\"utf-8\"><title>spbench report</title>"
                      f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    return page


def _write_page(path: Path, text: str) -> None:
    atomic_write_text(path, text)  # with the user's umask, like every file spbench writes
