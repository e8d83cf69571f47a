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
import sys
import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")

#: Attributes under which a registry entry keeps the code it was made from (a metric's factory, a
#: dataset's builder, the attack behind an attack evaluation); the entry itself otherwise.
_SOURCE_ATTRIBUTES = ("attack_cls", "factory", "builder")


def _source(entry: object) -> object:
    for attribute in _SOURCE_ATTRIBUTES:
        inner = getattr(entry, attribute, None)
        if inner is not None:
            return inner
    return entry


def origin(entry: object) -> str:
    """The module an entry's code comes from; for an entry without code (a preset), the module that
    registered it (recorded by :meth:`Registry.add`)."""
    source = _source(entry)
    module = getattr(source, "__module__", None) if isinstance(source, type) or callable(source) else None
    return module if isinstance(module, str) else _REGISTERED_BY.get(id(entry), "")


#: id(entry) -> the module that registered an entry that has no code of its own.
_REGISTERED_BY: dict[int, str] = {}


def _registering_module() -> str:
    """The first caller outside this module and the ``register_*`` helpers: the project's module or a plugin."""
    frame = sys._getframe(1)
    while frame is not None and (
        frame.f_globals.get("__name__") == __name__ or frame.f_code.co_name.startswith("register")
    ):
        frame = frame.f_back
    return str(frame.f_globals.get("__name__", "")) if frame is not None else ""


def _reimported(old: object, new: object) -> bool:
    """The same plugin file imported again (after its first import failed halfway): the same module and name."""
    return (
        not is_project(old)
        and origin(old) != ""
        and origin(old) == origin(new)
        and getattr(_source(old), "__qualname__", None) == getattr(_source(new), "__qualname__", None)
    )


def is_project(entry: object) -> bool:
    """Whether the project itself registered ``entry`` (its code lives in lipsim_bench)."""
    return origin(entry).startswith("lipsim_bench.")  # plugin files load as lipsim_bench_plugin_*, without the dot


def describe(entry: object) -> str:
    """``APGD (lipsim_bench.attacks.apgd)`` or ``Mine (/path/plugin.py)``: what a user can find."""
    source = _source(entry)
    what = getattr(source, "__qualname__", None) or getattr(source, "name", None) or type(source).__name__
    module = origin(entry)
    where = module if is_project(entry) else getattr(sys.modules.get(module), "__file__", None) or module
    return f"{what} ({where})" if where else str(what)


def package_modules(package: str) -> list[str]:
    """Every module and sub-package directly inside ``package``, sorted: a built-in written as ``PACKAGE.*`` is
    each file of its folder, so adding a task, dataset or evaluation is adding a file (no list to edit)."""
    import pkgutil

    found = importlib.import_module(package)
    return sorted(f"{package}.{m.name}" for m in pkgutil.iter_modules(found.__path__) if not m.name.startswith("_"))


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
        derived_kind: str = "attack",
    ) -> None:
        self.kind = kind
        self.builtins = builtins
        self.group = group or f"lipsim_bench.{kind}s"
        self.error = error
        self.hint = hint
        self._derived = derived
        self._entries: dict[str, T] = {}
        self._loaded = False
        self._derived_kind = derived_kind  # what the derived entries are made from
        self._reserved: list[tuple[str, Callable[[], dict[str, object]]]] = []

    def reserve(self, kind: str, taken: Callable[[], dict[str, object]]) -> None:
        """Names another registry holds that a plugin entry here must not take (an attack named 'natural'
        would become an evaluation hidden by the built-in one)."""
        self._reserved.append((kind, taken))

    # -- writing ---------------------------------------------------------------------------------

    def add(self, name: str, entry: T, *, same: Callable[[T, T], bool] | None = None) -> T:
        """Register ``entry`` under ``name``; a different entry under a taken name is an error.

        The built-ins are loaded before any other entry is added, so a plugin can never take a
        built-in's name (and silently its column) by registering first; a name derived from another
        registry (an attack's evaluation) is taken too.
        """
        if not name or not isinstance(name, str):
            raise self.error(f"a {self.kind} needs a non-empty name, got {name!r}")
        if not origin(entry):
            _REGISTERED_BY[id(entry)] = _registering_module()
        if not is_project(entry):
            self.load()
        old = self._entries.get(name)
        if old is not None and old is not entry and not (same and same(old, entry)) and not _reimported(old, entry):
            raise self.error(self._collision(name, old, entry))
        if old is None and self._derived is not None and not is_project(entry):
            taken = self._derived().get(name)
            if taken is not None:
                raise self.error(
                    f"{self.kind} {name!r} from {describe(entry)} has the name of the {self._derived_kind} "
                    f"{describe(taken)}, whose {self.kind} it would replace; give yours another name"
                )
        for kind, reserved in self._reserved if not is_project(entry) else ():
            other = reserved().get(name)
            if other is not None:
                raise self.error(
                    f"{self.kind} {name!r} from {describe(entry)} has the name of the {kind} {describe(other)} "
                    f"and would be hidden by it; give the {self.kind} another name"
                )
        self._entries[name] = entry
        return entry

    def _collision(self, name: str, old: T, new: T) -> str:
        """One line: which two entries want ``name``, and which one must move."""
        if is_project(old) and not is_project(new):
            return (
                f"{self.kind} {name!r} is built in ({describe(old)}); {describe(new)} cannot replace it: "
                f"give yours another name, e.g. {name + '-mine'!r}"
            )
        if is_project(new) and not is_project(old):
            return (
                f"{self.kind} {name!r} is built in ({describe(new)}); {describe(old)} cannot replace it: "
                f"give yours another name, e.g. {name + '-mine'!r}"
            )
        return f"{self.kind} {name!r} is registered twice ({describe(old)} and {describe(new)}); rename one"

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
            for name in package_modules(module[:-2]) if module.endswith(".*") else (module,):
                importlib.import_module(name)
        for ep in entry_points(group=self.group):
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must not take the built-ins down with it
                warnings.warn(f"{self.kind} plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)

    def _all(self) -> dict[str, T]:
        self.load()
        derived = self._derived() if self._derived else {}
        for name in sorted(set(derived) & set(self._entries)):  # an attack registered after an evaluation of its name
            own, other = self._entries[name], derived[name]
            raise self.error(
                f"{self._derived_kind} {name!r} from {describe(other)} has the name of the {self.kind} "
                f"{describe(own)} and would be hidden by it; give the {self._derived_kind} another name"
            )
        return {**derived, **self._entries}

    def own(self) -> dict[str, T]:
        """The registered entries, built-ins loaded, without the derived ones."""
        self.load()
        return dict(self._entries)

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
