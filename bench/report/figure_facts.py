"""What a figure's titles and legends say about the numbers drawn: dataset, split, n, an attack's steps,
and which cells the table marks as computed unlike the rest (bench/report/mixing.py), so a line from
60 triplets and 20 steps is never drawn like its 300-triplet, 100-step neighbours without a word."""

from __future__ import annotations

import json
import math
import textwrap
from collections import Counter
from dataclasses import dataclass

import pandas as pd

from lipsim_bench.report.mixing import mark_cells
from lipsim_bench.report.tables import column_label, legacy_kind

#: The legend's words for a marked cell, shared by every figure.
MARKED_WORDS = "dashed, hollow: other n, steps or seed (as marked in the table)"
BAND_WORDS = "shaded: 95% interval over triplets"


@dataclass(frozen=True)
class Facts:
    """The run facts every title names."""

    dataset: str = ""
    split: str = ""
    n: int | None = None
    items: str = "triplets"  # the task's scored items (queries, images)

    def text(self) -> str:
        where = " / ".join(p for p in (self.dataset, self.split) if p)
        count = f"n = {self.n} {self.items}" if self.n is not None else ""
        return ", ".join(p for p in (where, count) if p)


def _mode(values: list[object]) -> object:
    counts = Counter(v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v)))
    return counts.most_common(1)[0][0] if counts else None


def run_facts(scores: pd.DataFrame | None, triplets: pd.DataFrame | None, split: str | None) -> Facts:
    """Dataset, split and n of what is drawn: the table's n (its clean cells') where there is a table, else the
    number of distinct triplets."""
    dataset, n = "", None
    if scores is not None and not scores.empty:
        rows = scores[scores["split"] == split] if split is not None else scores
        if "dataset" in rows.columns:
            dataset = str(_mode(list(rows["dataset"])) or "")
        if len(rows):
            n = int(mark_cells(with_kind(rows), lambda r: "").n or 0) or None
    if triplets is not None and not triplets.empty:
        if not dataset and "dataset" in triplets.columns:
            dataset = str(_mode(list(triplets["dataset"])) or "")
        if n is None:
            n = int(triplets["id"].nunique())
    return Facts(dataset, split or "", n)


def with_kind(rows: pd.DataFrame) -> pd.DataFrame:
    return rows if "kind" in rows.columns else rows.assign(kind=[legacy_kind(e) for e in rows["evaluation"]])


def steps_of(scores: pd.DataFrame | None, evaluation: str) -> int | None:
    """The steps most of an evaluation's cells ran (its ``steps`` option), None where it has none."""
    if scores is None or "settings" not in scores.columns:
        return None
    found = []
    for raw in scores.loc[scores["evaluation"] == evaluation, "settings"]:
        try:
            found.append((json.loads(raw).get("options") or {}).get("steps"))
        except (TypeError, ValueError, AttributeError):
            continue
    value = _mode(found)
    return int(value) if isinstance(value, (int, float)) else None


def attack_words(evaluation: str, scores: pd.DataFrame | None) -> str:
    """``apgd (20 steps)``: an attack as titles name it."""
    steps = steps_of(scores, evaluation)
    return f"{evaluation} ({steps} steps)" if steps else evaluation


def marked_labels(scores: pd.DataFrame | None, split: str) -> set[tuple[str, str]]:
    """(metric, column label) of the cells the table of ``split`` marks."""
    if scores is None or scores.empty:
        return set()
    rows = scores[scores["split"] == split]
    if "dataset" in rows.columns and rows["dataset"].nunique() > 1:  # the table of the headline dataset
        rows = rows[rows["dataset"] == _mode(list(rows["dataset"]))]
    if rows.empty:
        return set()
    return set(mark_cells(with_kind(rows), cell_label).cells)


def cell_label(row: object) -> str:
    norm, eps = getattr(row, "norm", None), getattr(row, "eps", None)
    return column_label(
        row.evaluation,  # type: ignore[attr-defined]
        norm if isinstance(norm, str) else None,
        None if eps is None or pd.isna(eps) else float(eps),
    )


def is_marked(marked: set[tuple[str, str]], metric: str, evaluation: str, norm: object, eps: object) -> bool:
    label = column_label(
        evaluation, norm if isinstance(norm, str) else None, None if eps is None or pd.isna(eps) else float(eps)
    )
    return (metric, label) in marked


def figure_title(headline: str, facts: Facts, width_in: float, user: str | None = None) -> str:
    """The suptitle: ``user``'s headline (``--title``) if any, the figure's own headline (attack, steps) and the
    run facts (dataset, split, n), wrapped to the figure's width (never inside a $...$ formula)."""
    chars = max(20, int(width_in / (0.6 * 9 / 72)))  # figure.titlesize 9, a generous glyph width
    lines = []
    for line in (user, headline, facts.text()):
        if line:
            parts = line.split("$")
            kept = "$".join(p.replace(" ", "\0") if i % 2 else p for i, p in enumerate(parts))
            lines.append(textwrap.fill(kept, chars).replace("\0", " "))
    return "\n".join(lines)
