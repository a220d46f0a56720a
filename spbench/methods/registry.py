"""The method registry: built-in entries by name, plus the ``spbench.methods`` entry points.

Entries are ``"module:Class"`` strings or entry points, imported only when used, so listing the
registry or starting the CLI never imports a model library.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from importlib.metadata import entry_points

from spbench.errors import SpbenchError

ENTRY_POINT_GROUP = "spbench.methods"

# Methods that live inside spbench itself (the baselines come in through entry points).
BUILTIN: dict[str, str] = {
    "spctrl": "spbench.methods.spctrl:SPCtrlMethod",
    "real": "spbench.methods.real:RealImageMethod",
}


def _entries() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def method_names() -> list[str]:
    return sorted(_entries())


def get_method_class(name: str):
    """A registered name, or ``"module:Class"`` for a method that is importable but not registered."""
    entries = _entries()
    if ":" in name and name not in entries:
        entries = {**entries, name: name}
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        raise SpbenchError(f"unknown method {name!r}{hint} (known: {', '.join(sorted(entries))}; `spbench ls` lists them)")
    module_name, _, attr = entries[name].partition(":")
    if name not in BUILTIN and os.getcwd() not in sys.path:
        # Like `python -m`: a module next to where the command runs is importable.
        sys.path.append(os.getcwd())
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise SpbenchError(f"method {name!r}: cannot import {entries[name]} ({e})") from None
    from spbench.methods.base import Method

    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise SpbenchError(f"method {name!r}: {entries[name]} is not a subclass of spbench.methods.Method")
    return cls


def declared(name: str | None, attribute: str, default=None):
    """What the method registered as ``name`` declares as ``attribute`` (a :class:`Method` class
    attribute, e.g. ``not_applicable``), for code that has a run's record rather than its method;
    ``default`` when no method of that name can be imported here."""
    if not name:
        return default
    try:
        cls = get_method_class(name)
    except SpbenchError:
        return default
    return getattr(cls, attribute, default)
