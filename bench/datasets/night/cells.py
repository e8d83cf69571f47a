"""The cells of a NIGHT-like ``data.csv``, read from their text exactly as written, or refused.

Every cell is read as text (no type inference: ``007`` stays ``007``, a blank stays blank, ``3001.0``
is not ``3001``) and parsed here by one rule per column. A cell that breaks its rule is one
:class:`DatasetError` naming the file, the 1-based data row, the triplet id, the column and the value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from lipsim_bench.errors import DatasetError

SPLIT_VALUES = ("train", "val", "test")
TRUE_WORDS = frozenset({"true", "1", "1.0", "yes"})
FALSE_WORDS = frozenset({"false", "0", "0.0", "no"})


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("is not a number") from None
    if not math.isfinite(value):
        raise ValueError("is not a finite number")
    return value


def parse_count(text: str) -> int:
    """A vote count: a whole number >= 0 (``10`` or ``10.0``, never ``6.5``, ``inf`` or blank)."""
    value = _number(text)
    if not value.is_integer() or value < 0:
        raise ValueError("is not a whole number of votes >= 0")
    return int(value)


def parse_fraction(text: str) -> float:
    """A fraction of votes in [0, 1], read exactly (Python's correctly rounded float parse)."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError("is not a fraction in [0, 1]")
    return value


def parse_bool(text: str) -> bool:
    """True/False, true/false, 1/0, yes/no (the spellings tools write); anything else is refused."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("is not a boolean (write True or False)")


def parse_split(text: str) -> str:
    """One of train, val, test, exactly (a ``Test`` would otherwise silently select nothing)."""
    if text not in SPLIT_VALUES:
        raise ValueError(f"is not a split name: one of {', '.join(SPLIT_VALUES)}, written in lower case")
    return text


def parse_id(text: str) -> str:
    """The triplet id as written; only a blank one is refused."""
    if not text.strip():
        raise ValueError("is a blank id")
    return text


class Cells:
    """The text of one data.csv, with the location of any cell for error messages."""

    def __init__(self, csv_path: Path, frame: pd.DataFrame) -> None:
        self.csv_path = csv_path
        self.frame = frame
        self.ids = [str(v) for v in frame["id"]]

    def where(self, row: int, column: str) -> str:
        """``FILE, data row N (triplet ID), column C`` for the 0-based ``row``."""
        triplet = f" (triplet {self.ids[row]!r})" if column != "id" else ""
        return f"{self.csv_path}, data row {row + 1}{triplet}, column {column}"

    def parse(self, column: str, rule: Callable[[str], object]) -> list:
        """Every cell of ``column`` through ``rule``, or the first bad one as a DatasetError."""
        values = []
        for row, text in enumerate(self.frame[column]):
            try:
                values.append(rule(str(text)))
            except ValueError as exc:
                raise DatasetError(
                    f"{self.where(row, column)}: value {str(text)!r} {exc}; fix the file or re-download the dataset"
                ) from None
        return values

    def unique_ids(self) -> list[str]:
        """The ids, each non-blank and used once (a duplicate would merge two triplets' records)."""
        ids = self.parse("id", parse_id)
        first: dict[str, int] = {}
        for row, triplet in enumerate(ids):
            if triplet in first:
                raise DatasetError(
                    f"{self.where(row, 'id')}: id {triplet!r} is already used on data row {first[triplet] + 1}; "
                    "every triplet needs its own id"
                )
            first[triplet] = row
        return ids
