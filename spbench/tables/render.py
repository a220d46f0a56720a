"""Tables 1–3 from result records, the paper's numbers beside ours: Markdown, LaTeX or CSV.

Each cell holds the paper's number, ours (from the best matching record) and ours − paper.
A record fills the cells of its (dataset, method, variant); records of the shipped ``sample``
dataset fill the cells of the dataset named by their split and are marked. When several records
match a cell, full runs come before tiny ones and then the newest wins; the table says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from spbench.data.registry import stand_in
from spbench.errors import SpbenchError
from spbench.results.load import Loaded, metric_value
from spbench.tables.definitions import DATASET_LABELS, QUOTED_NOTE, Row, TableDef, get_table, paper_records
from spbench.tables.extra_columns import with_extra_columns
from spbench.tables.intervals import CI_FIELDS, interval_of, interval_text, show_intervals

FORMATS = ("md", "latex", "csv")
FIELDS = ("paper", "ours", "diff", "marker", "paper_note", *CI_FIELDS)  # ci_*: ours' recorded bootstrap interval
PAPER_NOTE = "*"
TINY = "†tiny"
SAMPLE = "‡sample"
LIMIT = "§limit"
OFF_PROTOCOL = "¶settings"
MARKER_NOTES = {
    TINY: f"{TINY}: from a record made with tiny random models: it checks the machinery; tiny numbers are not results.",
    SAMPLE: f"{SAMPLE}: from the small sample shipped with spbench, not the benchmark split; not a result.",
    LIMIT: f"{LIMIT}: from a run on the first N samples only (--limit); not comparable with the full split.",
    OFF_PROTOCOL: f"{OFF_PROTOCOL}: from a run whose settings depart from the paper's protocol (listed below); not comparable with the paper's numbers.",
}
ORACLE_NOTE = ("Diagnostic scores (the oracle pose model, which returns the condition pose, or a pose model other "
               "than the run's) are left out: they check the metric, not the method.")


def dataset_of(rec: Loaded) -> tuple[str, bool]:
    """(dataset whose cells the record fills, whether it is the shipped sample). A run on a keypoint
    schema file is a dataset of its own ("humanart (keypoint schema humanart21)"): its scores are
    over other keypoints than the paper's, so they never share a cell with the 17-keypoint runs."""
    dataset, sample = stand_in(rec.dataset, rec.split)
    schema_file = (rec.data.get("dataset") or {}).get("keypoint_schema")
    if isinstance(schema_file, dict):
        return f"{dataset} (keypoint schema {schema_file.get('name')})", sample
    return dataset, sample


def markers(rec: Loaded) -> list[str]:
    """Why a number is not a result: tiny says it all; otherwise the sample, --limit and settings
    that depart from the paper's protocol."""
    if rec.tiny:
        return [TINY]
    return [m for m, on in ((SAMPLE, dataset_of(rec)[1]), (LIMIT, bool(rec.limit)), (OFF_PROTOCOL, bool(rec.departures))) if on]


def usable(rec: Loaded, key: str) -> bool:
    """Whether ``rec`` has a number for ``key`` that measures the method: a diagnostic score
    (e.g. pose from the ``oracle`` pose model, which returns the condition pose) is a sanity
    check, and a score marked invalid (e.g. AP-10K pose from a COCO-head model) is no result."""
    if rec.diagnostic(key) or rec.invalid(key):
        return False
    return rec.metric(key) is not None


def preference(rec: Loaded) -> tuple:
    """Larger is preferred: full runs, then not the sample, then the newest."""
    return (not rec.tiny, not dataset_of(rec)[1], rec.date)


def best_record(records: list[Loaded], key: str) -> Loaded | None:
    """The record whose ``key`` fills a cell the records all match: the preferred usable one."""
    candidates = [r for r in records if usable(r, key)]
    return max(candidates, key=preference) if candidates else None


@dataclass
class Notes:
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        if line not in self.lines:
            self.lines.append(line)


def as_loaded(records) -> list[Loaded]:
    return [r if isinstance(r, Loaded) else Loaded(Path("<memory>"), r) for r in records]


def _paper_lookup(table: TableDef) -> dict[tuple, dict]:
    out = {}
    for r in paper_records(table.id):
        out[(r["dataset"]["name"], r["method"]["name"], r["method"].get("variant"))] = r
    return out


def build_table(table_id: str, records) -> "pandas.DataFrame":  # noqa: F821
    """The table as a DataFrame: one row per (dataset, row), columns (metric header, field) with
    field in paper / ours / diff (ours − paper, NaN when either is missing) / marker (e.g.
    ``†tiny``). ``df.attrs`` holds ``title``, ``table`` (the definition) and ``footnotes``."""
    import pandas as pd

    records = as_loaded(records)
    table = with_extra_columns(get_table(table_id), records)  # + diversity, when a record of the table has it
    paper = _paper_lookup(table)
    notes = Notes()
    index, data = [], []
    for dataset in table.datasets:
        for row in table.rows_for(dataset):
            index.append(_index_entry(table, dataset, row))
            ref = paper.get((dataset, row.method, row.variant))
            mine = [r for r in records if dataset_of(r)[0] == dataset and (r.method, r.variant) == row.key]
            data.append(row_values(table, dataset, row, ref, mine, notes))
    names = (["Dataset"] if len(table.datasets) > 1 else []) + ([table.group_label] if table.group_label else []) + ["Method"]
    columns = pd.MultiIndex.from_tuples([(c.header, f) for c in table.columns for f in FIELDS], names=["metric", "field"])
    rows = pd.MultiIndex.from_tuples(index, names=names) if len(names) > 1 else pd.Index([i[0] for i in index], name=names[0])
    df = pd.DataFrame(data, index=rows, columns=columns)
    used = {m for c in table.columns for m in df[(c.header, "marker")] if m}
    footnotes = []
    if any(r.quoted for r in table.rows):
        footnotes.append(QUOTED_NOTE)
    footnotes += [MARKER_NOTES[m] for m in MARKER_NOTES if any(m in u for u in used)]
    footnotes += notes.lines
    sources = sorted({r["source"] for r in paper.values()})
    df.attrs.update(title=table.title, table=table, footnotes=footnotes, source="Paper numbers: " + "; ".join(sources) + ".")
    return df


def _index_entry(table: TableDef, dataset: str, row: Row) -> tuple:
    entry = [DATASET_LABELS.get(dataset, dataset)] if len(table.datasets) > 1 else []
    if table.group_label:
        entry.append(row.group or "")
    return tuple(entry + [row.label])


def row_values(table: TableDef, dataset: str, row: Row, ref: dict | None, mine: list[Loaded], notes: Notes) -> list:
    values = []
    chosen_paths = set()
    for col in table.columns:
        p = metric_value(ref["metrics"], col.key) if ref else None
        paper_note = (ref.get("notes") or {}).get(col.key) if ref else None
        if paper_note:
            notes.add(f"{PAPER_NOTE} {paper_note}")
        for r in mine:
            if r.metric(col.key) is None:
                continue
            if r.diagnostic(col.key):
                notes.add(ORACLE_NOTE)
            elif r.invalid(col.key):
                notes.add(f"{DATASET_LABELS.get(dataset, dataset)} / {row.label}: {col.label} of {r.path} is left out, "
                          f"marked invalid: {r.invalid(col.key)}")
        best = best_record(mine, col.key)
        o = best.metric(col.key) if best else None
        if best:
            chosen_paths.add(str(best.path))
            if best.departures and not best.tiny:
                notes.add(f"{OFF_PROTOCOL} {best.path}: " + "; ".join(best.departures))
        diff = round(o - p, 6) if o is not None and p is not None else math.nan
        values += [math.nan if p is None else p, math.nan if o is None else o, diff,
                   "".join(markers(best)) if best else "", PAPER_NOTE if paper_note else "", *interval_of(best, col.key)]
    where = f"{DATASET_LABELS.get(dataset, dataset)} / {row.label}"
    paper_split = (ref or {}).get("dataset", {}).get("split")
    for path in sorted(chosen_paths):
        rec = next(r for r in mine if str(r.path) == path)
        if paper_split and not dataset_of(rec)[1] and rec.split != paper_split:
            notes.add(f"{where}: {path} is from split {rec.split!r}; the paper's is {paper_split!r}.")
    if len(mine) > 1:
        notes.add(f"{where}: {len(mine)} records match; each cell uses "
                  f"the newest with that metric (full runs before tiny ones): {', '.join(sorted(chosen_paths)) or 'none has these metrics'}")
    return values


# -- rendering ---------------------------------------------------------------------------------


def _num(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _cell(df, idx, header: str) -> str:
    paper, ours, diff, marker, paper_note, low, high = (df.loc[idx, (header, f)] for f in FIELDS)
    if df.attrs.get("ci"):  # --ci: ours' interval beside it (spbench.tables.intervals)
        marker = interval_text(low, high) + marker
    if df.attrs.get("ours_only"):  # rows the paper has no numbers for (spbench.tables.extra)
        return f"{_num(ours)}{marker}"
    text = f"{_num(paper)}{paper_note} / {_num(ours)}{marker}"
    if not math.isnan(diff):
        text += f" ({diff:+.2f})"
    return text


def _display_rows(df) -> list[tuple[list[str], list[str]]]:
    """(index labels with repeats blanked, cell texts) per row."""
    out, previous = [], None
    for idx in df.index:
        labels = list(idx) if isinstance(idx, tuple) else [idx]
        shown = [("" if previous and previous[: i + 1] == labels[: i + 1] else v) for i, v in enumerate(labels[:-1])]
        out.append((shown + [labels[-1]], [_cell(df, idx, h) for h in _headers(df)]))
        previous = labels
    return out


def _headers(df) -> list[str]:
    return list(dict.fromkeys(df.columns.get_level_values(0)))


CAPTION = "Each cell: paper / ours (ours − paper); — where there is no number."


def to_markdown(df) -> str:
    heads = list(df.index.names) + _headers(df)
    lines = [f"**{df.attrs['title']}** — {df.attrs.get('caption', CAPTION)}", "", "| " + " | ".join(heads) + " |",
             "|" + "|".join([":--"] * len(df.index.names) + ["--:"] * (len(heads) - len(df.index.names))) + "|"]
    for labels, cells in _display_rows(df):
        lines.append("| " + " | ".join(labels + cells) + " |")
    lines.append("")
    lines += [f"- {n}" for n in [df.attrs["source"], *df.attrs["footnotes"]]]
    return "\n".join(lines) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          "†": r"\textsuperscript{\dag}", "‡": r"\textsuperscript{\ddag}", "§": r"\textsuperscript{\S}",
          "¶": r"\textsuperscript{\P}",
          "—": "---", "−": "$-$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "·": r"$\cdot$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(df) -> str:
    heads = list(df.index.names) + _headers(df)
    spec = "l" * len(df.index.names) + "c" * len(_headers(df))
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(df.attrs['title'] + '. ' + df.attrs.get('caption', CAPTION))}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(latex_escape(h) for h in heads) + r" \\", r"\midrule"]
    previous_first = None
    for labels, cells in _display_rows(df):
        if len(df.index.names) > 1 and labels[0] and previous_first is not None:
            lines.append(r"\midrule")
        previous_first = labels[0] if labels[0] else previous_first
        cells = [c.replace(" (-", " (−") for c in cells]  # a real minus sign in the differences
        lines.append(" & ".join(latex_escape(x) for x in labels + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    for note in [df.attrs["source"], *df.attrs["footnotes"]]:
        lines.append(r"\par\footnotesize " + latex_escape(note))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_csv(df) -> str:
    keys = {c.header: c.key for c in df.attrs["table"].columns}
    flat = df.copy()
    if df.attrs.get("ours_only"):
        flat = flat.loc[:, [c for c in flat.columns if c[1] in ("ours", "marker", *CI_FIELDS)]]
    if not df.attrs.get("ci"):
        flat = flat.loc[:, [c for c in flat.columns if c[1] not in CI_FIELDS]]
    flat.columns = [f"{keys[h]} {f}" for h, f in flat.columns]
    return flat.reset_index().to_csv(index=False)


def render(table_id: str, records, fmt: str = "md", ci: bool = False) -> str:
    fmt = {"markdown": "md", "tex": "latex"}.get(fmt.lower(), fmt.lower())
    if fmt not in FORMATS:
        raise SpbenchError(f"unknown table format {fmt!r} (use {', '.join(FORMATS)})")
    df = build_table(table_id, records)
    if ci:
        show_intervals(df)
    return {"md": to_markdown, "latex": to_latex, "csv": to_csv}[fmt](df)
