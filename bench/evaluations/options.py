"""Evaluation options: frozen dataclasses whose fields are the ``--set NAME.OPTION=VALUE`` vocabulary.

Values from the command line arrive as text and are coerced by the field's type (int, float,
bool, str, tuples of those, ``X | None``, fractions like ``36/255``); values from the Python API
arrive typed and are checked the same way. A wrong option name or value is one clear error.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from fractions import Fraction
from typing import Any, Union

from lipsim_bench.errors import BenchError


def _number(text: str) -> float:
    text = text.strip()
    return float(Fraction(text)) if "/" in text else float(text)


def _coerce_scalar(kind: Any, value: Any, where: str) -> Any:
    if kind is Any:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise BenchError(f"{where}: {value!r} is not a boolean; write true or false")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise BenchError(f"{where}: {value!r} is not an integer")
        try:
            return int(value) if not isinstance(value, str) else int(value.strip())
        except (ValueError, TypeError):
            raise BenchError(f"{where}: {value!r} is not an integer") from None
    if kind is float:
        if isinstance(value, bool):
            raise BenchError(f"{where}: {value!r} is not a number")
        try:
            number = _number(value) if isinstance(value, str) else float(value)
        except (ValueError, ZeroDivisionError, TypeError):
            raise BenchError(f"{where}: {value!r} is not a number (fractions like 36/255 are fine)") from None
        if not math.isfinite(number):
            raise BenchError(f"{where}: {value!r} is not a finite number")
        return number
    if kind is str:
        return str(value)
    raise BenchError(f"{where}: options of type {kind!r} cannot be set")


def split_values(text: str) -> list[str]:
    """Comma-separated values of one option, empty items dropped (``0.12,0.25,`` is two)."""
    return [t for t in text.split(",") if t.strip()]


def coerce(kind: Any, value: Any, where: str) -> Any:
    """``value`` as the annotated type ``kind``, or a BenchError naming ``where``."""
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
            if len(args) < len(typing.get_args(kind)):
                return None
        errors = []
        for arg in args:
            try:
                return coerce(arg, value, where)
            except BenchError as exc:
                errors.append(str(exc))
        raise BenchError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is tuple:
        (item, *rest) = typing.get_args(kind) or (Any,)
        items = split_values(value) if isinstance(value, str) else list(value)
        if not items:
            raise BenchError(f"{where}: give at least one value (comma-separated)")
        return tuple(coerce(item, v, where) for v in items)
    if origin is typing.Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise BenchError(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    return _coerce_scalar(kind, value, where)


def _takes_several(kind: Any) -> bool:
    """Whether an option's type holds a tuple (``tuple[float, ...]``, or one inside ``X | None``)."""
    if typing.get_origin(kind) in (Union, types.UnionType):
        return any(_takes_several(arg) for arg in typing.get_args(kind))
    return kind is Any or typing.get_origin(kind) is tuple


def option_fields(options_cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of an Options dataclass."""
    hints = typing.get_type_hints(options_cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(options_cls)}


def build_options(options_cls: type, evaluation: str, values: dict[str, Any]) -> Any:
    """An Options instance from ``values`` (text or typed); unknown names are one clear error."""
    fields = option_fields(options_cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = ", ".join(fields) or "(none)"
        raise BenchError(f"evaluation {evaluation!r} has no option {unknown[0]!r}; its options: {known}")
    typed = {}
    for name, value in values.items():
        if isinstance(value, (list, tuple)) and not _takes_several(fields[name]):
            raise BenchError(
                f"{evaluation}.{name}: {value!r} is several values, but it takes one "
                "(`run_bench.py list` says which options take several)"
            )
        try:
            typed[name] = coerce(fields[name], value, f"{evaluation}.{name}")
        except BenchError as exc:
            several = isinstance(value, str) and "," in value and typing.get_origin(fields[name]) is not tuple
            raise BenchError(
                f"{exc} (it takes one value; `run_bench.py list` says which options take several)"
                if several
                else str(exc)
            ) from None
    return options_cls(**typed)


def expand_sweeps(evaluation: str, sweeps: tuple[str, ...], values: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict of option values per combination of the swept options' values, in the order given.

    A swept option may hold several values (comma-separated text, or a list from the Python API): each
    becomes its own unit (``--set smoothing.sigma=0.12,0.25,0.5``: three units).
    """
    combos = [dict(values)]
    for option in sweeps:
        if option not in values:
            continue
        raw = values[option]
        raw = raw.tolist() if hasattr(raw, "tolist") else raw  # numpy arrays and scalars
        items = split_values(raw) if isinstance(raw, str) else list(raw) if isinstance(raw, (list, tuple)) else [raw]
        if not items:
            raise BenchError(f"{evaluation}.{option}: give at least one value (comma-separated)")
        combos = [{**combo, option: item} for combo in combos for item in items]
    return combos


def options_dict(options: Any) -> dict[str, Any]:
    """An Options instance as plain JSON-able values (tuples become lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(options).items()}


def parse_set(text: str) -> tuple[str, str, str]:
    """``NAME.OPTION=VALUE`` -> (name, option, value)."""
    target, sep, value = text.partition("=")
    name, dot, option = target.strip().rpartition(".")
    if not sep or not dot or not name or not option:
        raise BenchError(f"--set {text!r}: write NAME.OPTION=VALUE, e.g. --set apgd.steps=50")
    return name, option.strip(), value.strip()
