"""One small lazy, typed registry (lm-evaluation-harness's ``Registry`` is the model).

An entry is a ``"module:object"`` string, imported the first time it is loaded, or an object
registered as it is; a registry may also read the entry points of a named group (built-in names
win over a plug-in of the same name). Loading checks the kind (a subclass of a base class, a
callable, an instance) and says "did you mean" for an unknown name; listing imports nothing.

This module is in the base layer and imports nothing of spbench but :mod:`spbench.errors`:
registries of higher layers hold their entries as strings, so no import runs upwards.
Registries of this package: ``METHODS`` (:mod:`spbench.methods.registry`), ``DATASETS``
(:mod:`spbench.data.registry`), ``CONDITIONS`` (:mod:`spbench.conditions`), ``METRICS``
(:mod:`spbench.metrics.evaluate`) and :data:`TINY_MODELS` below.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from spbench.errors import SpbenchError

T = TypeVar("T")


def import_target(target: str) -> Any:
    """The object a ``"module:object"`` (or ``"module:object.attr"``) string names."""
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def did_you_mean(name: str, known, template: str = "did you mean {0!r}? ") -> str:
    """``template`` filled with the closest of ``known`` to ``name``, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return template.format(close[0]) if close else ""


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind, each imported when it is loaded.

    ``kind`` names the kind in messages ("method"); ``base`` is a class (or its ``"module:Class"``,
    imported at the first check) every loaded entry must subclass, named ``base_name`` in errors;
    ``instance_of`` a class it must be an instance of, and ``callable_`` asks for a callable.
    ``group`` is an entry-point group read when the names are first asked for. ``unknown`` and
    ``hint`` are the message for an unknown name (``{name}``, ``{hint}``, ``{known}``) and the
    did-you-mean part of it (``{0}``, the close name); ``sort_known`` lists the known names sorted.

    As a mapping, iteration and ``in`` see names only (nothing is imported); ``registry[name]``
    loads (KeyError when unknown); :meth:`load` is the same with a one-line SpbenchError.
    """

    def __init__(
        self,
        kind: str,
        *,
        base: type | str | None = None,
        base_name: str | None = None,
        instance_of: type | None = None,
        callable_: bool = False,
        group: str | None = None,
        unknown: str = "unknown {kind} {name!r}; {hint}known: {known}",
        hint: str = "did you mean {0!r}? ",
        sort_known: bool = False,
    ):
        self.kind = kind
        self.base = base
        self.base_name = base_name
        self.instance_of = instance_of
        self.callable_ = callable_
        self.group = group
        self.unknown = unknown
        self.hint = hint
        self.sort_known = sort_known
        self._entries: dict[str, Any] = {}   # name -> "module:object" or the object itself
        self._aliases: dict[str, str] = {}

    # -- declaring ---------------------------------------------------------------------------
    def register(self, name: str, target: Any, *, aliases: tuple[str, ...] = ()) -> None:
        """``target``: a ``"module:object"`` string (lazy) or the object itself. A name is
        registered once."""
        if name in self._entries or name in self._aliases:
            raise SpbenchError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = target
        for alias in aliases:
            self._aliases[alias] = name

    def alias(self, alias: str, name: str) -> None:
        self._aliases[alias] = name

    # -- listing (imports nothing) -----------------------------------------------------------
    def _all(self) -> dict[str, Any]:
        found = dict(self._entries)
        if self.group:  # read each time: a plug-in installed since is seen (as importlib does)
            for ep in entry_points(group=self.group):
                found.setdefault(ep.name, ep.value)
        return found

    def names(self) -> list[str]:
        """Every name, built-in first in declaration order, then plug-ins; aliases not included."""
        return list(self._all())

    def target(self, name: str) -> Any:
        """The entry of ``name`` as declared (a ``"module:object"`` string or an object)."""
        return self._all()[self._aliases.get(name, name)]

    def is_builtin(self, name: str) -> bool:
        return self._aliases.get(name, name) in self._entries

    def canonical(self, name: str) -> str:
        """``name``, or the name an alias stands for."""
        return self._aliases.get(name, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._aliases or name in self._all())

    def unknown_error(self, name: str) -> SpbenchError:
        known = sorted(self.names()) if self.sort_known else self.names()
        hint = did_you_mean(name, known + list(self._aliases), self.hint)
        return SpbenchError(self.unknown.format(kind=self.kind, name=name, hint=hint, known=", ".join(known)))

    # -- loading -----------------------------------------------------------------------------
    def __getitem__(self, name: str) -> T:
        if name not in self:
            raise KeyError(name)
        return self.load(name)

    def load(self, name: str, target: Any = None) -> T:
        """The checked object of ``name`` (imported on first use); ``target`` loads a
        ``"module:object"`` not registered, under ``name``."""
        name = self._aliases.get(name, name)
        if target is None:
            entries = self._all()  # one look at the entry points
            if name not in entries:
                raise self.unknown_error(name)
            target = entries[name]
        obj = target
        if isinstance(target, str):
            try:
                obj = import_target(target)
            except (ImportError, AttributeError) as e:
                raise SpbenchError(f"{self.kind} {name!r}: cannot import {target} ({e})") from None
        self.check(name, obj, target)
        return obj  # modules are cached by importlib; nothing else is

    def check(self, name: str, obj: Any, target: Any = None) -> None:
        """The kind check of :meth:`load`; a SpbenchError naming the entry when it fails."""
        where = target if isinstance(target, str) else type(obj).__name__
        base = import_target(self.base) if isinstance(self.base, str) else self.base
        if base is not None and not (isinstance(obj, type) and issubclass(obj, base)):
            label = self.base_name or f"{base.__module__}.{base.__qualname__}"
            raise SpbenchError(f"{self.kind} {name!r}: {where} is not a subclass of {label}")
        if self.instance_of is not None and not isinstance(obj, self.instance_of):
            raise SpbenchError(f"{self.kind} {name!r}: {where} is not a {self.instance_of.__name__}")
        if self.callable_ and not callable(obj):
            raise SpbenchError(f"{self.kind} {name!r}: {where} is not callable")


# -- tiny models -------------------------------------------------------------------------------
# ``tiny://NAME`` model settings: random models of the real architectures, built in-process for
# tests. One registry of builders that every loader asks (models, metrics, condition models); the
# builders keep their own arguments (a pose model's keypoint count, the Inception network's resize).
TINY_PREFIX = "tiny://"

TINY_MODELS: Registry[Callable[..., Any]] = Registry(
    "tiny model", callable_=True, unknown="unknown tiny model {name!r}; {hint}known: {known}"
)
for _name, _builder in {
    "sd15": "spbench.models.stable_diffusion:build_tiny_sd",
    "zoedepth": "spbench.models.condition_models:build_tiny_zoedepth",
    "sam-hq": "spbench.models.condition_models:build_tiny_sam_hq",
    "vitpose": "spbench.metrics.pose_models:build_tiny_vitpose",
    "clip": "spbench.metrics.clip_model:build_tiny_clip",
    "grounding-dino": "spbench.metrics.detection_models:build_tiny_grounding_dino",
    "inception": "spbench.metrics.fid_inception:build_tiny_inception",
    "lpips": "spbench.metrics.diversity_lpips:build_tiny_lpips",
    "dinov2": "spbench.metrics.diversity_dino:build_tiny_dinov2",
    "sdxl": "spbench.models.sdxl:build_tiny_sdxl",
    "controlnet-sdxl": "spbench.models.sdxl:build_tiny_controlnet_sdxl",
    "sd3": "spbench.models.sd3:build_tiny_sd3",
    "controlnet-sd3": "spbench.models.sd3:build_tiny_controlnet_sd3",
    "flux": "spbench.models.flux:build_tiny_flux",
    "controlnet-flux-union": "spbench.models.flux:build_tiny_controlnet_flux_union",
}.items():
    TINY_MODELS.register(_name, _builder)


def is_tiny_spec(spec: Any) -> bool:
    """Whether a model setting is a ``tiny://NAME`` spec (known or not)."""
    return isinstance(spec, str) and spec.startswith(TINY_PREFIX)


def tiny_builder(spec: str, known: str | tuple[str, ...] | None = None,
                 error: str | None = None) -> Callable[..., Any]:
    """The builder of ``tiny://NAME``. ``known`` (a spec, or several) are the ones the asking
    loader can use; another name is an error, ``error`` (``{spec}``, ``{known}``) or the registry's."""
    name = spec[len(TINY_PREFIX):] if spec.startswith(TINY_PREFIX) else spec
    allowed = (known,) if isinstance(known, str) else known
    if allowed is not None and TINY_PREFIX + name not in allowed:
        if error is not None:
            raise SpbenchError(error.format(spec=spec, known=", ".join(allowed)))
        raise SpbenchError(f"unknown tiny model {spec!r}: use {', '.join(allowed)}")
    return TINY_MODELS.load(name)
