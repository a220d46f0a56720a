"""`spbench check EXPECTED`: compare result records with expected metrics and tolerances (CI).

The expected file (YAML or JSON)::

    version: 1
    defaults: {tolerance: 0.5, direction: both}     # optional
    expected:
      - dataset: sample          # record dataset.name
        split: ap10k             # record dataset.split (optional)
        method: controlnet       # record method.name
        variant: null            # record method.variant (absent means null)
        profile: tiny            # record config.profile.name (optional)
        run: sample-ap10k-controlnet-tiny   # record run, the run folder's name (optional)
        where: {evaluation.pose.model: oracle}  # other record fields that must equal these (optional)
        metrics:
          pose.AP: {value: 0.0, tolerance: 0.01, direction: higher}

``direction`` says which way is better: ``higher`` fails only when the value drops more than
``tolerance`` below ``value``, ``lower`` only when it rises more than that, ``both`` when it
moves more than that either way.

``tolerance: ci`` uses the run's own bootstrap interval over prompts (recorded with the headline,
:mod:`spbench.results.intervals`) instead of a fixed number: ``both`` holds when the expected
value lies within the interval; ``higher`` fails only when the whole interval lies below it (and
counts as improved when the whole interval lies above it); ``lower`` the mirror image. It applies
to headline metrics (``pose.AP``, ``clip.score``, ``fid.fid``, ``det.AP75``, ``pose@oracle.AP``); a
record without an interval for it (scored before intervals, or with resamples set to 0) fails as ``missing``.

A metric the record marks invalid (e.g. AP-10K pose from a pose model without an AP-10K head)
fails as ``invalid``; a diagnostic score (``pose@oracle.AP``, or an
older record's pose scored with the oracle) is compared but marked ``(diagnostic)``. Exit status:
0 all hold, 1 a regression, an invalid value or a missing record or metric, 2 a usage error (one
line naming the file and field).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from spbench.errors import SpbenchError
from spbench.metrics.spec import HIGHER, LOWER
from spbench.results.intervals import headline_problem, record_interval
from spbench.results.load import Loaded, load_records

DIRECTIONS = (HIGHER, LOWER, "both")
EPS = 1e-9  # float round-off allowed on top of the tolerance
MATCH_FIELDS = ("dataset", "split", "method", "variant", "profile", "run")
CI = "ci"  # tolerance: ci — the run's bootstrap interval


@dataclass(frozen=True)
class MetricSpec:
    key: str
    value: float
    tolerance: float
    direction: str
    interval: bool = False  # tolerance: ci — the record's bootstrap interval instead of ``tolerance``


@dataclass(frozen=True)
class Expectation:
    match: dict          # MATCH_FIELDS present in the entry (variant always)
    where: dict          # dotted record path -> value
    metrics: tuple[MetricSpec, ...]

    def describe(self) -> str:
        m = self.match
        name = m["method"] + (f"[{m['variant']}]" if m.get("variant") else "")
        text = f"{m['dataset']}/{m.get('split', '*')} {name} {m.get('profile', '')}".strip()
        if "run" in m:
            text += f" run={m['run']}"
        return text + "".join(f" {k}={v}" for k, v in self.where.items())

    def matches(self, rec: Loaded) -> bool:
        actual = {"dataset": rec.dataset, "split": rec.split, "method": rec.method, "variant": rec.variant,
                  "profile": rec.profile, "run": rec.data.get("run")}
        return (all(actual[k] == v for k, v in self.match.items())
                and all(rec.get(k) == v for k, v in self.where.items()))


# -- reading the expected file -------------------------------------------------------------------


def _number(where: str, value, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpbenchError(f"{where}: expected a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise SpbenchError(f"{where}: must be >= {minimum}, got {value!r}")
    return float(value)


def _direction(where: str, value) -> str:
    if value not in DIRECTIONS:
        raise SpbenchError(f"{where}: {value!r} is not one of {', '.join(DIRECTIONS)}")
    return value


def read_expected(path: str | Path) -> list[Expectation]:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise SpbenchError(f"expected file {path}: cannot read it ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise SpbenchError(f"{path}: not valid YAML/JSON{at} ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(data, dict):
        raise SpbenchError(f"{path}: expected a mapping with an 'expected' list at the top")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise SpbenchError(f"{path}: defaults: expected a mapping (tolerance, direction)")
    unknown = set(defaults) - {"tolerance", "direction"}
    if unknown:
        raise SpbenchError(f"{path}: defaults.{sorted(unknown)[0]}: unknown field (known: tolerance, direction)")
    entries = data.get("expected")
    if not isinstance(entries, list) or not entries:
        raise SpbenchError(f"{path}: expected: a non-empty list of entries is required")
    return [_entry(f"{path}: expected[{i}]", e, defaults) for i, e in enumerate(entries)]


def _entry(where: str, entry, defaults: dict) -> Expectation:
    if not isinstance(entry, dict):
        raise SpbenchError(f"{where}: expected a mapping")
    unknown = set(entry) - set(MATCH_FIELDS) - {"where", "metrics"}
    if unknown:
        raise SpbenchError(f"{where}.{sorted(unknown)[0]}: unknown field (known: {', '.join(MATCH_FIELDS)}, where, metrics)")
    for required in ("dataset", "method", "metrics"):
        if required not in entry:
            raise SpbenchError(f"{where}.{required}: missing")
    match = {"variant": None}
    for k in MATCH_FIELDS:
        if k in entry:
            if entry[k] is not None and not isinstance(entry[k], str):
                raise SpbenchError(f"{where}.{k}: expected a string, got {entry[k]!r}")
            match[k] = entry[k]
    where_ = entry.get("where") or {}
    if not isinstance(where_, dict):
        raise SpbenchError(f"{where}.where: expected a mapping of record fields to values")
    metrics = entry["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        raise SpbenchError(f"{where}.metrics: expected a non-empty mapping of metric keys (e.g. pose.AP)")
    specs = []
    for key, spec in metrics.items():
        at = f"{where}.metrics.{key}"
        if not isinstance(spec, dict):
            spec = {"value": spec}
        unknown = set(spec) - {"value", "tolerance", "direction"}
        if unknown:
            raise SpbenchError(f"{at}.{sorted(unknown)[0]}: unknown field (known: value, tolerance, direction)")
        if "value" not in spec:
            raise SpbenchError(f"{at}.value: missing")
        if "tolerance" not in spec and "tolerance" not in defaults:
            raise SpbenchError(f"{at}.tolerance: missing (or set defaults.tolerance)")
        tolerance = spec.get("tolerance", defaults.get("tolerance"))
        interval = tolerance == CI
        if interval and headline_problem(str(key)):
            raise SpbenchError(f"{at}.tolerance: {CI!r} needs a headline metric key (pose.AP, clip.score, "
                               f"det.AP75, ...): {headline_problem(str(key))}")
        specs.append(MetricSpec(
            str(key), _number(f"{at}.value", spec["value"]),
            0.0 if interval else _number(f"{at}.tolerance", tolerance, 0.0),
            _direction(f"{at}.direction", spec.get("direction", defaults.get("direction", "both"))), interval,
        ))
    return Expectation(match, dict(where_), tuple(specs))


# -- comparing -------------------------------------------------------------------------------------


def status(spec: MetricSpec, value: float | None, invalid: str | None = None, interval=None) -> str:
    """ok, improved (beyond tolerance in the good direction: passes), regressed, missing, or
    invalid (the record says the value is not a valid score). ``interval``: the record's (low,
    high) for ``tolerance: ci``."""
    if invalid:
        return "invalid"
    if value is None or (spec.interval and not isinstance(interval, tuple)):
        return "missing"
    if spec.interval:
        low, high = interval
        if spec.direction == "both":
            return "ok" if low - EPS <= spec.value <= high + EPS else "regressed"
        worse, better = (high < spec.value - EPS, low > spec.value + EPS) if spec.direction == HIGHER \
            else (low > spec.value + EPS, high < spec.value - EPS)
        return "regressed" if worse else "improved" if better else "ok"
    delta = value - spec.value
    limit = spec.tolerance + EPS
    if spec.direction == "both":
        return "ok" if abs(delta) <= limit else "regressed"
    sign = 1.0 if spec.direction == HIGHER else -1.0
    if sign * delta < -limit:
        return "regressed"
    return "improved" if sign * delta > limit else "ok"


@dataclass(frozen=True)
class Outcome:
    expectation: Expectation
    spec: MetricSpec
    record: Loaded | None
    candidates: int
    value: float | None
    status: str
    interval: tuple[float, float] | str | None = None  # tolerance: ci — (low, high), or why there is none


def compare(expectations: list[Expectation], records: list[Loaded]) -> list[Outcome]:
    out = []
    for exp in expectations:
        found = [r for r in records if exp.matches(r)]
        rec = max(found, key=lambda r: r.date) if found else None
        for spec in exp.metrics:
            value = rec.metric(spec.key) if rec else None
            invalid = rec.invalid(spec.key) if rec and value is not None else None
            interval = record_interval(rec.data, spec.key) if rec and spec.interval else None
            out.append(Outcome(exp, spec, rec, len(found), value, status(spec, value, invalid, interval), interval))
    return out


STYLE = {"ok": "green", "improved": "cyan", "regressed": "bold red", "missing": "bold red", "invalid": "bold red"}


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def outcome_tables(outcomes: list[Outcome]):
    """One rich table per expected record: title the record, a row per metric, notes below."""
    from rich.table import Table

    groups: dict[int, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(id(o.expectation), []).append(o)
    for group in groups.values():
        first = group[0]
        source = str(first.record.path) if first.record else "no matching record"
        if first.candidates > 1:
            source += f" (newest of {first.candidates} matching records)"
        notes = []
        if first.record:
            for o in group:
                why = first.record.invalid(o.spec.key) if o.status == "invalid" else first.record.diagnostic(o.spec.key)
                if why and why not in notes:
                    notes.append(why)
                if isinstance(o.interval, str) and o.interval not in notes:
                    notes.append(o.interval)
        from rich.markup import escape

        caption = escape("\n".join([source, *notes]))
        t = Table(title=first.expectation.describe(), caption=caption, title_justify="left", caption_justify="left")
        for col in ("metric", "value", "expected", "delta", "tolerance", "better", "status"):
            t.add_column(col, justify="left" if col in ("metric", "better", "status") else "right")
        for o in group:
            delta = None if o.value is None else o.value - o.spec.value
            tol = f"±{o.spec.tolerance:g}" if o.spec.direction == "both" else f"{o.spec.tolerance:g}"
            if o.spec.interval:
                tol = f"ci [{_fmt(o.interval[0])}, {_fmt(o.interval[1])}]" if isinstance(o.interval, tuple) else "ci (none)"
            key = o.spec.key + (" (diagnostic)" if o.record and o.record.diagnostic(o.spec.key) else "")
            t.add_row(key, _fmt(o.value), _fmt(o.spec.value), "—" if delta is None else f"{delta:+.4g}",
                      tol, o.spec.direction, f"[{STYLE[o.status]}]{o.status}[/]")
        yield t


def check_command(expected: str | Path, results: list[str] | None = None, console=None) -> int:
    """Print the comparison; 0 all hold, 1 a regression or something missing, 2 a usage error."""
    from rich.console import Console

    console = console or Console()
    try:
        expectations = read_expected(expected)
        records = load_records(results or None)
    except SpbenchError as e:
        Console(stderr=True).print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        return 2
    outcomes = compare(expectations, records)
    for table in outcome_tables(outcomes):
        console.print(table)
    counts = {s: sum(o.status == s for o in outcomes) for s in STYLE}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()) + f" ({len(records)} records read)")
    if counts["improved"]:
        console.print("improved: better than expected beyond the tolerance; if that is intended, update the expected file")
    return 1 if counts["regressed"] or counts["missing"] or counts["invalid"] else 0
