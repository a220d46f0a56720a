"""`spbench ls`: what can be run — methods, datasets, profiles, metrics. Imports no torch."""

from __future__ import annotations

from rich.table import Table

from spbench.cli.console import console
from spbench.errors import SpbenchError


def list_things():
    """List methods, datasets, profiles and metrics."""
    from spbench.config import load_profile, profile_names
    from spbench.data.registry import DATASETS
    from spbench.methods.registry import get_method_class, method_names
    from spbench.metrics.evaluate import METRICS

    t = Table(title="methods")
    for col in ("name", "condition", "variants", "description"):
        t.add_column(col)
    for name in method_names():
        try:
            cls = get_method_class(name)
        except SpbenchError as e:  # a broken plug-in must not hide the others
            t.add_row(name, "?", "?", f"[red]{e}[/]")
            continue
        t.add_row(name, cls.condition, ", ".join(cls.variants) or "—", cls.description)
    console.print(t)
    t = Table(title="datasets")
    for col in ("name", "schema", "splits", "description"):
        t.add_column(col)
    for name, info in DATASETS.items():
        t.add_row(name, info.schema, ", ".join(info.splits), info.description)
    console.print(t)
    t = Table(title="profiles")
    t.add_column("name")
    t.add_column("description")
    for name in profile_names():
        t.add_row(name, load_profile(name).get("description", ""))
    console.print(t)
    console.print("metrics: " + ", ".join(METRICS))
