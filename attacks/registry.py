"""Attack registry: ``@register_attack("name")`` on an attack class, ``list_attacks()``."""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")

_ATTACKS: dict[str, type] = {}


def register_attack(name: str) -> Callable[[T], T]:
    """Register an attack class under ``name`` (the name used by ``--attacks``)."""

    def decorator(cls: T) -> T:
        _ATTACKS[name] = cls  # type: ignore[assignment]
        return cls

    return decorator


def list_attacks() -> list[str]:
    """Names of the registered attacks."""
    return sorted(_ATTACKS)


def get_attack(name: str) -> type:
    """The attack class registered under ``name``."""
    return _ATTACKS[name]
