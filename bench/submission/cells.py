"""Cells of an entry and the rows behind them: which record gives a cell, and the score its rows give.

A table names a cell computed with another setting after the difference (``apgd(steps=20)``, see
bench/report/variants.py) while the record's rows keep the evaluation's own name (``apgd``); a cell is found in a
record's rows by split, norm and eps, and by that name.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from lipsim_bench.evaluations.twoafc import score_rows
from lipsim_bench.formatting import format_eps


def _eps(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), 12)


def _norm(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def names_match(shown: str, stored: str) -> bool:
    """Whether the table's evaluation name ``shown`` is the records' ``stored`` one, or a variant of it."""
    if shown == stored:
        return True
    if stored.endswith(")") and "(" in stored:
        return shown.startswith(stored[:-1] + ", ")
    return shown.startswith(stored + "(")


def same_cell(cell: dict[str, Any], row: dict[str, Any]) -> bool:
    """Whether a score row (a record's, or recomputed from rows) is the entry's ``cell``."""
    return (
        str(row.get("split")) == str(cell.get("split"))
        and _norm(row.get("norm")) == _norm(cell.get("norm"))
        and _eps(row.get("eps")) == _eps(cell.get("eps"))
        and names_match(str(cell.get("evaluation")), str(row.get("evaluation")))
    )


def cell_name(cell: dict[str, Any]) -> str:
    """``apgd l2 eps 2 on test``, ``certified l2 eps 36/255 on test``: how a line names a cell (radii as tables
    print them)."""
    parts = [str(cell.get("evaluation")), _norm(cell.get("norm"))]
    eps = _eps(cell.get("eps"))
    parts.append(None if eps is None else f"eps {format_eps(eps)}")
    return " ".join(p for p in parts if p) + f" on {cell.get('split')}"


def recomputed(cell: dict[str, Any], rows: pd.DataFrame, split: str) -> dict[str, Any] | None:
    """The score row ``rows`` give for ``cell`` (score, n), recomputed from each triplet's agreement; None when
    the rows hold no such cell."""
    if not len(rows) or "agreement" not in rows.columns:
        return None
    frame = rows.assign(agreement=pd.to_numeric(rows["agreement"], errors="coerce"))
    return next((row for row in score_rows(frame, split=split) if same_cell(cell, row)), None)
