"""Attack registry: ``@register_attack`` on an :class:`lipsim_bench.attacks.base.Attack` subclass, keyed by its ``name``.

Third-party attacks come from the ``lipsim_bench.attacks`` entry-point group or ``--plugin FILE.py``;
each registered attack becomes an evaluation (``--evaluations NAME``) with no other file touched.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from lipsim_bench.errors import BenchError
from lipsim_bench.registry import Registry, describe

T = TypeVar("T", bound=type)


class AttackRegistryError(BenchError):
    """An unknown or doubly registered attack."""


ATTACKS: Registry[type] = Registry(
    "attack",
    builtins=(
        "lipsim_bench.attacks.apgd",
        "lipsim_bench.attacks.apgd_margin",
        "lipsim_bench.attacks.pgd",
        "lipsim_bench.attacks.external",
        "lipsim_bench.attacks.square",
    ),
    error=AttackRegistryError,
)


@overload
def register_attack(arg: T) -> T: ...
@overload
def register_attack(arg: str | None = None) -> Callable[[T], T]: ...


def register_attack(arg: Any = None) -> Any:
    """Register an attack class under its ``name`` attribute (written once, on the class).

    ``@register_attack`` and ``@register_attack()`` use ``cls.name``; ``@register_attack("x")`` is
    kept for older plugins and must agree with ``cls.name`` when the class sets one.
    """

    def decorator(cls: T) -> T:
        name = arg if isinstance(arg, str) else getattr(cls, "name", None)
        if not isinstance(name, str) or not name or name == "attack":
            raise AttackRegistryError(
                f"attack class {cls.__name__} needs a `name` class attribute (the name --attacks and --evaluations use)"
            )
        own = cls.__dict__.get("name")
        if own is not None and isinstance(arg, str) and own != arg:
            raise AttackRegistryError(f"attack class {cls.__name__} has name {own!r} but is registered as {arg!r}")
        from lipsim_bench.attacks.base import Attack

        if not (isinstance(cls, type) and issubclass(cls, Attack)):
            raise AttackRegistryError(
                f"@register_attack takes an Attack subclass (lipsim_bench.attacks.Attack), got {cls!r}"
            )
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
            raise AttackRegistryError(f"attack class {describe(cls)} does not define {missing}; implement it")
        if own is None:
            cls.name = name  # type: ignore[attr-defined]
        ATTACKS.add(name, cls)
        return cls

    return decorator(arg) if isinstance(arg, type) else decorator


def list_attacks() -> list[str]:
    """Names of the registered attacks."""
    return ATTACKS.names()


def get_attack(name: str) -> type:
    """The attack class registered under ``name``."""
    return ATTACKS.get(name)
