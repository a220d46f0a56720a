"""The method registry: built-in entries by name, plus the ``spbench.methods`` entry points.

Entries are ``"module:Class"`` strings or entry points (:class:`spbench.registry.Registry`),
imported only when used, so listing the registry or starting the CLI never imports a model library.
"""

from __future__ import annotations

import os
import sys

from spbench.errors import SpbenchError
from spbench.registry import Registry

ENTRY_POINT_GROUP = "spbench.methods"

METHODS: Registry[type] = Registry(
    "method", base="spbench.methods.base:Method", base_name="spbench.methods.Method", group=ENTRY_POINT_GROUP,
    unknown="unknown method {name!r}{hint} (known: {known}; `spbench ls` lists them)", hint=" — did you mean {0!r}?",
    sort_known=True,
)
# Methods that live inside spbench itself (the baselines come in through entry points).
BUILTIN: dict[str, str] = {
    "spctrl": "spbench.methods.spctrl:SPCtrlMethod",
    "real": "spbench.methods.real:RealImageMethod",
}
for _name, _target in BUILTIN.items():
    METHODS.register(_name, _target)


def method_names() -> list[str]:
    return sorted(METHODS)


def get_method_class(name: str):
    """A registered name, or ``"module:Class"`` for a method that is importable but not registered."""
    if not METHODS.is_builtin(name) and os.getcwd() not in sys.path:
        # Like `python -m`: a module next to where the command runs is importable.
        sys.path.append(os.getcwd())
    if ":" in name and name not in METHODS:
        return METHODS.load(name, target=name)
    return METHODS.load(name)


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
