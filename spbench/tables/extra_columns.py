"""The optional column group after the paper's columns of Tables 1–3 (``EXTRA_COLUMNS`` of
:mod:`spbench.tables.definitions`: diversity, which the paper does not report). A table shows them
only when a record that fills one of its rows has a number for one; the paper's columns, rows and
numbers stay as they are, and the paper's side of these cells is "—"."""

from __future__ import annotations

import dataclasses

from spbench.data.registry import stand_in
from spbench.tables.definitions import EXTRA_COLUMNS, TableDef


def fills_table(rec, table: TableDef) -> bool:
    """Whether a record (:class:`~spbench.results.load.Loaded`) fills a row of ``table``."""
    dataset = stand_in(rec.dataset, rec.split)[0]
    return dataset in table.datasets and any(r.key == (rec.method, rec.variant) for r in table.rows_for(dataset))


def with_extra_columns(table: TableDef, records) -> TableDef:
    """``table`` with the extra columns that a record of its rows has a (non-diagnostic, valid) number for."""
    mine = [r for r in records if fills_table(r, table)]
    shown = tuple(c for c in EXTRA_COLUMNS if c not in table.columns
                  and any(r.metric(c.key) is not None and not r.diagnostic(c.key) and not r.invalid(c.key) for r in mine))
    return dataclasses.replace(table, columns=table.columns + shown) if shown else table
