"""`spbench table --ci`: the bootstrap interval of each of our numbers, beside it in its cell.

The interval is the one recorded with the number (``metrics.<metric>.bootstrap`` in its
result.json, :mod:`spbench.results.intervals`): a percentile bootstrap over the run's prompts.
Tables carry it in two fields per column, ``ci_low`` and ``ci_high`` (NaN where the record has
none, e.g. FID); Markdown and LaTeX show ``ours [low, high]`` with ``--ci``, CSV adds the two
columns.
"""

from __future__ import annotations

import math

from spbench.results.load import Loaded

CI_FIELDS = ("ci_low", "ci_high")
CI_CAPTION = "Each cell: paper / ours [interval] (ours − paper); — where there is no number."
CI_NOTE = ("[low, high]: the bootstrap interval over prompts recorded with our number (result.json "
           "metrics.<metric>.bootstrap; percentile, 95% unless evaluation.bootstrap_confidence says otherwise); "
           "FID's (evaluation.bootstrap_fid_resamples) shows the spread, FID being biased upward on resampled sets.")


def interval_of(rec: Loaded | None, key: str) -> tuple[float, float]:
    """(low, high) of the interval ``rec`` holds for the metric ``key`` (``pose.AP``); NaN, NaN
    when there is no record, no interval, or an interval of another key."""
    if rec is None:
        return math.nan, math.nan
    metric, _, headline = key.partition(".")
    block = ((rec.data.get("metrics") or {}).get(metric) or {}).get("bootstrap")
    if not isinstance(block, dict) or block.get("key") != headline:
        return math.nan, math.nan
    low, high = block.get("low"), block.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
        return math.nan, math.nan
    return float(low), float(high)


def interval_text(low: float, high: float) -> str:
    """`` [low, high]`` with two decimals, or "" without an interval."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    return f" [{low:.2f}, {high:.2f}]"


def show_intervals(df) -> None:
    """Turn on ``--ci`` for a table DataFrame: the renderers show the intervals, CSV keeps their
    columns, and the footnotes say what they are."""
    df.attrs["ci"] = True
    df.attrs.setdefault("caption", CI_CAPTION)  # the section of other runs keeps its own caption
    if CI_NOTE not in df.attrs.get("footnotes", []):
        df.attrs["footnotes"] = [*df.attrs.get("footnotes", []), CI_NOTE]
