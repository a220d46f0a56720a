"""`spbench compare RUN_A RUN_B`: the paired difference B − A of each headline metric on the same
prompts and seeds, with its bootstrap interval.

Paired: both runs are resampled on the same draws of prompts (:func:`spbench.metrics.bootstrap.paired_interval`),
so what the two methods share (which prompts are hard) cancels out of the difference. The runs must
have been made from the same split (its content hash) under the same seeds (base seed, images per
prompt, seed scheme), and each metric must have been scored the same way (model, protocol).

FID is resampled from both runs' stored Inception features (``bootstrap/<key>.npz``), on the first
``evaluation.bootstrap_fid_resamples`` (run A's; ``--resamples`` sets them too) of the same draws.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from spbench.errors import SpbenchError
from spbench.metrics.bootstrap import (FID_BIAS_NOTE, FID_OLD_REASON, BootstrapSettings, FidResampler, fid_resamples,
                                       paired_interval)
from spbench.metrics.spec import METRIC_SPECS, metric_spec
from spbench.results.intervals import load_resampler
from spbench.results.load import RECORD_FILE, metric_value

# What must match between the two records' ``evaluation.<metric>`` for a paired difference to mean something.
SAME_SCORING = ("model", "dataset_index", "protocol", "text", "category", "iou_type", "box_threshold", "resize")


@dataclass
class Row:
    key: str                   # the metric's key in the records (pose, pose@oracle, clip, ...)
    label: str
    arrow: str
    result: dict | None = None  # paired_interval's block
    reason: str | None = None  # why there is no interval
    a: float | None = None     # the headlines as the records hold them
    b: float | None = None

    @property
    def verdict(self) -> str:
        """Which run the interval favours: ``B better``, ``B worse`` or ``no clear difference``."""
        r = self.result or {}
        low, high = r.get("low"), r.get("high")
        if low is None or high is None:
            return "—"
        if low <= 0 <= high:
            return "no clear difference"
        higher = (low > 0) == (metric_spec(self.key).direction == "higher")
        return "B better" if higher else "B worse"


@dataclass
class Comparison:
    a: Path
    b: Path
    settings: BootstrapSettings
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_run_record(path: str | Path, which: str) -> tuple[Path, dict]:
    """(run folder, its result record); ``path`` is the folder or its result.json."""
    path = Path(path)
    folder = path.parent if path.name == RECORD_FILE else path
    record_file = folder / RECORD_FILE
    if not folder.is_dir():
        raise SpbenchError(f"{which} {path}: no such run folder")
    try:
        record = json.loads(record_file.read_text())
    except FileNotFoundError:
        raise SpbenchError(f"{which} {folder}: no {RECORD_FILE}; score the run first (`spbench evaluate {folder}`)") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SpbenchError(f"{which} {record_file}: not readable JSON ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        raise SpbenchError(f"{which} {record_file}: not a result record (no metrics)")
    return folder, record


def check_pairable(a: dict, b: dict) -> None:
    """Same prompts (split hash) and same seeds, or a one-line error."""
    da, db = a.get("dataset") or {}, b.get("dataset") or {}
    if not da.get("hash") or not db.get("hash"):
        raise SpbenchError("a record has no dataset.hash (the split's content hash): cannot tell that the runs share prompts")
    if da["hash"] != db["hash"]:
        raise SpbenchError(f"the runs were made from different prompts: split {da.get('name')}/{da.get('split')} "
                           f"hash {str(da['hash'])[:12]} (A) vs {db.get('name')}/{db.get('split')} hash "
                           f"{str(db['hash'])[:12]} (B); a paired comparison needs the same split (and --limit)")
    sa, sb = a.get("seeds") or {}, b.get("seeds") or {}
    for part, words in (("scheme", "seed scheme"), ("base", "base seed"), ("images_per_prompt", "images per prompt")):
        if sa.get(part) != sb.get(part):
            raise SpbenchError(f"the runs used different seeds: {words} {sa.get(part)!r} (A) vs {sb.get(part)!r} (B); "
                               "a paired comparison needs the same seed for each (prompt, k)")


def headline_keys(a: dict, b: dict, wanted: list[str] | None = None) -> list[str]:
    """The metric keys both records hold (``wanted``: those named, e.g. ``pose``, ``pose@oracle``),
    in METRIC_SPECS order, diagnostics after."""
    both = [k for k in a["metrics"] if k in b["metrics"] and k.partition("@")[0] in METRIC_SPECS]
    if wanted:
        for name in wanted:
            if name.partition("@")[0] not in METRIC_SPECS:
                raise SpbenchError(f"--metrics: unknown metric {name!r} (known: {', '.join(METRIC_SPECS)})")
            if name not in both:
                missing = " and ".join(w for w, r in (("A", a), ("B", b)) if name not in r["metrics"])
                raise SpbenchError(f"--metrics: {name} is not in the record of run {missing}")
        return [k for k in both if k in wanted]
    order = list(METRIC_SPECS)
    return sorted(both, key=lambda k: ("@" in k, order.index(k.partition("@")[0]), k))


def _scoring_difference(key: str, a: dict, b: dict) -> str | None:
    ea = (a.get("evaluation") or {}).get(key) or {}
    eb = (b.get("evaluation") or {}).get(key) or {}
    for part in SAME_SCORING:
        if ea.get(part) != eb.get(part):
            return f"scored differently ({part}: {ea.get(part)!r} in A, {eb.get(part)!r} in B)"
    return None


def compare_runs(run_a: str | Path, run_b: str | Path, metrics: list[str] | None = None, progress=None,
                 resamples: int | None = None, seed: int | None = None, confidence: float | None = None) -> Comparison:
    """The paired differences; the bootstrap settings not given are run A's ``evaluation.bootstrap_*``."""
    folder_a, a = read_run_record(run_a, "RUN_A")
    folder_b, b = read_run_record(run_b, "RUN_B")
    check_pairable(a, b)
    base = BootstrapSettings.from_config(a.get("config") or {})
    settings = BootstrapSettings(base.resamples if resamples is None else resamples, base.seed if seed is None else seed,
                                 base.confidence if confidence is None else confidence).checked("--")
    out = Comparison(folder_a, folder_b, settings)
    keys = headline_keys(a, b, metrics)
    if not keys:
        raise SpbenchError("the two records share no scored metric: nothing to compare")
    for key in keys:
        spec = metric_spec(key)
        row = Row(key, spec.label + spec.arrow + (f" @{key.partition('@')[2]}" if "@" in key else ""), spec.arrow,
                  a=metric_value(a["metrics"], f"{key}.{spec.key}"), b=metric_value(b["metrics"], f"{key}.{spec.key}"))
        out.rows.append(row)
        why = _scoring_difference(key, a, b)
        for which, rec in (("A", a), ("B", b)):
            if why is None and (rec["metrics"][key] or {}).get("invalid"):
                why = f"marked invalid in {which}: {rec['metrics'][key]['invalid']}"
        skipped = ((a["metrics"][key] or {}).get("bootstrap") or {}).get("skipped")
        if skipped and str(skipped).startswith(FID_OLD_REASON):
            skipped = None  # FID scored before its features were kept: load_resampler says so
        why = why or (str(skipped) if skipped else None)  # not resampled: the record says why
        if why:
            row.reason = why
            continue
        found = []
        for which, folder, rec in (("A", folder_a, a), ("B", folder_b, b)):
            r = load_resampler(folder, key, rec)
            if isinstance(r, str):
                row.reason = f"{which}: {r}"
                break
            found.append(r)
        if row.reason:
            continue
        row_settings = settings
        if all(isinstance(r, FidResampler) for r in found):  # FID (and HumanSD's): its own resample count
            if resamples is None:
                row_settings = dataclasses.replace(settings, resamples=fid_resamples(a.get("config") or {})[0])
            out.notes.append(f"{row.label}: {row_settings.resamples} resamples (the first of the same draws; "
                             f"run A's evaluation.bootstrap_fid_resamples unless --resamples is given). {FID_BIAS_NOTE}")
        task = progress.add_task(f"paired bootstrap {key}", total=2 * row_settings.resamples) if progress else None
        row.result = paired_interval(*found, row_settings,
                                     progress=(lambda: progress.advance(task)) if task is not None else None)
    for which, rec in (("A", a), ("B", b)):
        if rec.get("tiny"):
            out.notes.append(f"run {which} used tiny random models: its numbers check the machinery and are not results")
    return out


def _fmt(x, spec) -> str:
    return "—" if x is None else spec.format(x)


def comparison_table(c: Comparison):
    """The comparison as a rich table."""
    from rich.table import Table

    pct = f"{c.settings.confidence * 100:g}%"
    title = (f"B − A on the same prompts and seeds (paired bootstrap, {pct} interval, "
             f"{c.settings.resamples} resamples, seed {c.settings.seed})")
    # At least as wide as its title: rich wraps a title to the table's width.
    t = Table(title=title, caption=f"A: {c.a}\nB: {c.b}", title_justify="left", caption_justify="left",
              min_width=len(title))
    for col in ("metric", "A", "B", "B − A", f"{pct} interval", "prompts", "verdict"):
        t.add_column(col, justify="left" if col in ("metric", "verdict") else "right")
    for row in c.rows:
        spec = metric_spec(row.key)
        if row.result is None:
            diff = "—" if row.a is None or row.b is None else f"{row.b - row.a:+.2f}"
            t.add_row(row.label, _fmt(row.a, spec), _fmt(row.b, spec), diff, "—", "—", "no interval (below)")
            continue
        r = row.result
        diff = "—" if r["difference"] is None else f"{r['difference']:+.2f}"
        ci = "—" if r["low"] is None else f"[{r['low']:+.2f}, {r['high']:+.2f}]"
        label = row.label if r["resamples"] == c.settings.resamples else f"{row.label} ({r['resamples']} resamples)"
        t.add_row(label, _fmt(r["a"], spec), _fmt(r["b"], spec), diff, ci, str(r["num_prompts"]), row.verdict)
    return t


def reason_lines(c: Comparison) -> list[str]:
    """One line per metric without an interval: why."""
    return [f"{row.label}: no interval: {row.reason}" for row in c.rows if row.result is None and row.reason]


def comparison_json(c: Comparison) -> dict:
    return {"a": str(c.a), "b": str(c.b),
            "settings": {"resamples": c.settings.resamples, "seed": c.settings.seed, "confidence": c.settings.confidence},
            "metrics": {row.key: ({**row.result, "verdict": row.verdict} if row.result
                                  else {"a": row.a, "b": row.b, "skipped": row.reason}) for row in c.rows},
            "notes": c.notes}
