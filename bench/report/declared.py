"""The mark of certified cells whose Lipschitz bound the metric only declares (nobody proved it).

The ``certified`` evaluation writes one footer line per such metric into its records' notes
(:func:`lipsim_bench.evaluations.certified.declared_bound_note`); a table marks that metric's
certified cells with the same sign the line starts with, so the number never reads as proven.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pandas as pd

from lipsim_bench.evaluations.certified import DECLARED_MARK, declared_bound_metrics


def declared_cells(rows: pd.DataFrame, notes: list[str], label: Callable[[Any], str]) -> set[tuple[str, str]]:
    """(metric, column label) of every certified cell of ``rows`` from a bound its metric declares."""
    metrics = declared_bound_metrics(notes)
    if not metrics or rows.empty:
        return set()
    kinds = rows["kind"] if "kind" in rows.columns else pd.Series("certificate", index=rows.index)
    return {
        (row.metric, label(row))
        for row, kind in zip(rows.itertuples(), kinds)
        if row.metric in metrics
        and kind == "certificate"
        and re.split(r"[( \[]", str(row.evaluation), maxsplit=1)[0] == "certified"
    }


def add_declared_marks(markers: pd.DataFrame, cells: set[tuple[str, str]]) -> pd.DataFrame:
    """``markers`` (letters per cell, "" for none) with the declared-bound sign added to ``cells``."""
    for metric, column in cells:
        if metric in markers.index and column in markers.columns:
            markers.loc[metric, column] = ",".join(m for m in (markers.loc[metric, column], DECLARED_MARK) if m)
    return markers
