"""A score is what its own rows give: 100 x the mean agreement of its triplets (size-weighted over groups).

Checked twice. When a unit is computed: a plugin evaluation's 150, NaN or a score its rows do not
give, and an evaluation that returns nothing, are refused in one line naming it, before anything is
stored. When a record is read (a rerun's reuse, ``report``): every stored score is recomputed from
the record's triplet rows and must match, so a score edited in the JSON is refused even when the file
was resealed with a fresh checksum (the checksum is plain sha256: it catches damage, not intent; a
keyed checksum needs a secret, which a run folder shared between machines cannot carry). Editing the
score *and* the rows consistently rewrites the evidence itself; that is beyond what a file can prove.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from lipsim_bench.evaluations.twoafc import score_rows

#: Scores are percentages of floats read back from CSV: equal up to rounding.
TOLERANCE = 1e-9


def _key(row: dict[str, Any]) -> tuple:
    eps = row.get("eps")
    return (row.get("split"), row.get("evaluation"), row.get("norm"), None if eps is None else round(float(eps), 12))


def _where(row: dict[str, Any]) -> str:
    parts = [str(row.get("evaluation")), row.get("norm"), None if row.get("eps") is None else f"eps {row['eps']:g}"]
    return " ".join(p for p in parts if p) + f" on {row.get('split')}"


#: What a scored evaluation's per-triplet rows must hold (:func:`lipsim_bench.evaluations.twoafc.score_rows`).
ROW_COLUMNS = ("evaluation", "norm", "eps", "group", "agreement")


def rows_problem(rows: pd.DataFrame, kind: str, applies: bool) -> str | None:
    """Why a scored evaluation's rows cannot be scored (none, a column missing, agreement outside [0, 1]), or None."""
    if not applies or kind == "diagnostic":
        return None
    if not len(rows):
        return "it returned no per-triplet rows (no score), so its column would vanish"
    missing = [c for c in ROW_COLUMNS if c not in rows.columns]
    if missing:
        return f"its rows have no {missing[0]!r} column (build them with EmbeddedBatch.rows)"
    agreement = pd.to_numeric(rows["agreement"], errors="coerce")
    bad = agreement.isna() | (agreement < 0) | (agreement > 1)
    if bad.any():
        return f"a row's agreement is {rows['agreement'][bad].iloc[0]!r}; agreement must be in [0, 1] (its score would be outside 0..100)"
    return None


def score_problem(scores: list[dict[str, Any]], rows: pd.DataFrame, split: str, kind: str, applies: bool) -> str | None:
    """Why ``scores`` are not what ``rows`` give (range, NaN, mismatch, missing, empty), or None."""
    for row in scores:
        value = row.get("score")
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
            or not 0 <= value <= 100
        ):
            return f"its score {value!r} for {_where(row)} is not a number from 0 to 100"
    if not applies or kind == "diagnostic":
        return (
            f"it has {len(scores)} score(s) but {'does not apply' if not applies else 'is a diagnostic'}"
            if scores
            else None
        )
    if problem := rows_problem(rows, kind, applies):
        return problem
    expected = {_key(r): r for r in score_rows(rows, split=split)}
    given = {_key(r): r for r in scores}
    for key, want in expected.items():
        got = given.get(key)
        if got is None:
            return f"it has no score for {_where(want)}, which its rows give ({want['score']:.4f})"
        if abs(float(got["score"]) - float(want["score"])) > TOLERANCE or got.get("n") != want["n"]:
            return (
                f"its score {float(got['score']):.4f} (n {got.get('n')}) for {_where(want)} is not what its rows give "
                f"({float(want['score']):.4f}, n {want['n']})"
            )
    extra = [given[k] for k in given if k not in expected]
    return f"its score for {_where(extra[0])} has no rows behind it" if extra else None
