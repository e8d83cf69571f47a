"""One registry shape for every kind of plugin: metrics, attacks, evaluations, datasets, presets.

A :class:`Registry` maps names to entries. Built-in entries come from modules imported the first
time the registry is read (so ``import metrics`` stays cheap), third-party ones from an entry-point
group (``lipsim_bench.<kind>s``) or from ``--plugin FILE.py`` / ``--import MODULE``; a miss answers
with the closest names ("did you mean"). Derived entries (one attack evaluation per registered
attack) are computed on every read, so a plugin loaded late still gets them.
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one plugin kind (lm-evaluation-harness' ``Registry[T]``, timm's lazy loading)."""

    def __init__(
        self,
        kind: str,
        *,
        builtins: tuple[str, ...] = (),
        group: str | None = None,
        error: type[Exception] = KeyError,
        hint: str = "see `python run_bench.py list`",
        derived: Callable[[], dict[str, T]] | None = None,
    ) -> None:
        self.kind = kind
        self.builtins = builtins
        self.group = group or f"lipsim_bench.{kind}s"
        self.error = error
        self.hint = hint
        self._derived = derived
        self._entries: dict[str, T] = {}
        self._loaded = False

    # -- writing ---------------------------------------------------------------------------------

    def add(self, name: str, entry: T, *, same: Callable[[T, T], bool] | None = None) -> T:
        """Register ``entry`` under ``name``; a different entry under a taken name is an error."""
        if not name or not isinstance(name, str):
            raise self.error(f"a {self.kind} needs a non-empty name, got {name!r}")
        old = self._entries.get(name)
        if old is not None and old is not entry and not (same and same(old, entry)):
            raise self.error(f"{self.kind} {name!r} is registered twice ({old!r} and {entry!r}); rename one")
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        """Forget ``name`` (tests use it to clean up toy plugins)."""
        self._entries.pop(name, None)

    # -- reading ---------------------------------------------------------------------------------

    def load(self) -> None:
        """Import the built-in modules and the entry-point group, once."""
        if self._loaded:
            return
        self._loaded = True
        for module in self.builtins:
            importlib.import_module(module)
        for ep in entry_points(group=self.group):
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must not take the built-ins down with it
                warnings.warn(f"{self.kind} plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)

    def _all(self) -> dict[str, T]:
        self.load()
        derived = self._derived() if self._derived else {}
        return {**derived, **self._entries}

    def names(self) -> list[str]:
        return sorted(self._all())

    def items(self) -> Iterator[tuple[str, T]]:
        entries = self._all()
        return ((name, entries[name]) for name in sorted(entries))

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def get(self, name: str) -> T:
        """The entry of ``name``, or one clear error with the closest names and where to look."""
        entries = self._all()
        if name in entries:
            return entries[name]
        raise self.error(self.unknown(name, entries))

    def unknown(self, name: str, entries: dict[str, T] | None = None) -> str:
        known = sorted(entries if entries is not None else self._all())
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
        guess = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        return f"unknown {self.kind} {name!r}{guess}; known {self.kind}s: {', '.join(known) or '(none)'} ({self.hint})"
