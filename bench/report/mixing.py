"""Cells of one table computed with other settings than the rest: each gets a marker and a footer line.

A report over reruns or merged run folders can put a cell at n = 10 beside one at n = 20, or a
seed-1 attack beside seed-0 ones. The table must say so in that cell, never hide it. Table-wide
settings (n, seed, the triplets) are compared with the table's majority, which the title states;
an evaluation's options with its other cells; a metric's weights and adapter with its other cells.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: Options that are the cell's column (eps) or stated table-wide (seed): never compared as options.
NOT_COMPARED = ("eps", "seed")


def unit_settings(unit: dict[str, Any]) -> dict[str, Any]:
    """The columns a score row gets from its record's unit: its seed, and what else makes cells comparable."""
    settings = unit.get("settings") or {}
    options = {k: v for k, v in (settings.get("options") or {}).items() if k not in NOT_COMPARED}
    compared = {key: settings.get(key) for key in ("data", "weights", "source", "version", "batch_size")}
    compared["perturb"] = settings.get("perturb", "ref")  # keys before --perturb existed were the reference's
    return {
        "seed": settings.get("seed"),
        "settings": json.dumps({**compared, "options": options}, sort_keys=True, default=str),
    }


@dataclass
class Marks:
    """Markers per table cell (metric, column label), their footer lines, and the title's n and seed."""

    cells: dict[tuple[str, str], str] = field(default_factory=dict)
    footer: list[str] = field(default_factory=list)
    n: int | None = None
    seed: Any = None


def _mode(values: list[Hashable], prefer: Callable[[Any], Any] = lambda v: 0) -> Any:
    """The most common value; ties go to the preferred one (``prefer`` smallest), then the first seen."""
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], prefer(v))) if counts else None


def _text(value: Any) -> str:
    return json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)


def _settings(row: Any) -> dict[str, Any]:
    raw = getattr(row, "settings", None)
    return json.loads(raw) if isinstance(raw, str) and raw else {}


def _seed(row: Any) -> Any:
    seed = getattr(row, "seed", None)
    return None if seed is None or pd.isna(seed) else int(seed)


def _grouped_modes(
    rows: list[Any], parsed: list[dict], group: Callable[[Any], str], keys: Callable[[dict], dict]
) -> dict:
    """Per group (an evaluation, a metric): the most common value of every key among its cells."""
    values: dict[tuple[str, str], list[str]] = {}
    for row, settings in zip(rows, parsed):
        for key, value in keys(settings).items():
            values.setdefault((group(row), key), []).append(_text(value))
    return {k: _mode(v) for k, v in values.items()}


def _options(settings: dict) -> dict:
    return {
        **(settings.get("options") or {}),
        "version": settings.get("version"),
        "batch size": settings.get("batch_size"),
    }


def _metric_keys(settings: dict) -> dict:
    return {"weights": settings.get("weights"), "adapter source": settings.get("source")}


def differences(rows: pd.DataFrame, items: str = "triplets") -> tuple[list[list[str]], int | None, Any]:
    """For each score row of one table, how its settings differ from the rest; and the title's n and seed
    (``items``: the task's scored items, as the title names them)."""
    records = list(rows.itertuples())
    clean = [r for r in records if getattr(r, "kind", None) == "clean"] or records
    n_ref = _mode([int(r.n) for r in clean], prefer=lambda v: -v)
    seed_ref = _mode([_seed(r) for r in records if _seed(r) is not None], prefer=lambda v: v)
    parsed = [_settings(r) for r in records]
    data_ref = _mode([s.get("data") for r, s in zip(records, parsed) if int(r.n) == n_ref])
    options_ref = _grouped_modes(records, parsed, lambda r: r.evaluation, _options)
    metric_ref = _grouped_modes(records, parsed, lambda r: r.metric, _metric_keys)
    found = []
    for row, settings in zip(records, parsed):
        diff = []
        if int(row.n) != n_ref:
            diff.append(f"n = {int(row.n)} {items} (the title's n = {n_ref})")
        elif settings.get("data") != data_ref:
            diff.append(f"other {items} of the same number (data {settings.get('data')}, the others' {data_ref})")
        if _seed(row) != seed_ref:
            diff.append(f"seed {_seed(row)} (the title's seed {seed_ref})")
        for key, value in _options(settings).items():
            if _text(value) != options_ref[(row.evaluation, key)]:
                diff.append(
                    f"{row.evaluation} {key} = {_text(value)} (its other cells: {options_ref[(row.evaluation, key)]})"
                )
        for key, value in _metric_keys(settings).items():
            if _text(value) != metric_ref[(row.metric, key)]:
                diff.append(f"{key} {_text(value)} ({row.metric}'s other cells: {metric_ref[(row.metric, key)]})")
        found.append(diff)
    return found, n_ref, seed_ref


def mark_cells(rows: pd.DataFrame, label: Callable[[Any], str], items: str = "triplets") -> Marks:
    """Markers (a), (b), ... for the cells of ``rows`` (one table's score rows) whose settings differ."""
    if rows.empty:
        return Marks()
    found, n_ref, seed_ref = differences(rows, items)
    marks = Marks(n=n_ref, seed=seed_ref)
    letters: dict[str, str] = {}
    for row, diff in zip(rows.itertuples(), found):
        if not diff:
            continue
        text = "; ".join(diff)
        if text not in letters:
            letters[text] = _letter(len(letters))
            marks.footer.append(f"({letters[text]}) computed with {text}")
        marks.cells[(row.metric, label(row))] = letters[text]
    return marks


def _letter(i: int) -> str:
    """a, b, ..., z, aa, ab, ...: enough markers for any table."""
    letters = string.ascii_lowercase
    return letters[i] if i < len(letters) else _letter(i // len(letters) - 1) + letters[i % len(letters)]


def marker_frame(table: pd.DataFrame, marks: Marks) -> pd.DataFrame:
    """Markers laid out like ``table`` ("" where a cell matches the rest)."""
    frame = pd.DataFrame("", index=table.index, columns=table.columns)
    for (metric, column), letter in marks.cells.items():
        if metric in frame.index and column in frame.columns:
            frame.loc[metric, column] = letter
    return frame
