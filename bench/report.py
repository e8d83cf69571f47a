"""Tables from score rows: the paper's layout, a row per metric and a column per evaluation and eps."""

from __future__ import annotations

import math

import pandas as pd

SCORE_COLUMNS = ["metric", "dataset", "split", "evaluation", "norm", "eps", "score", "n"]


def format_eps(eps: float) -> str:
    """Radii that are multiples of 1/255 read as the paper writes them (36/255), others as decimals."""
    if eps is None or (isinstance(eps, float) and math.isnan(eps)):
        return ""
    scaled = eps * 255
    if 0 < eps < 1 and abs(scaled - round(scaled)) < 1e-6:
        return f"{round(scaled)}/255"
    return f"{eps:g}"


def column_label(evaluation: str, norm: object, eps: object) -> str:
    if evaluation == "natural":
        return "natural"
    parts = [evaluation]
    if isinstance(norm, str) and norm:
        parts.append(norm)
    if eps is not None and not (isinstance(eps, float) and math.isnan(eps)):
        parts.append(format_eps(float(eps)))
    return " ".join(parts)


def _column_order(evaluation: str, eps: float | None) -> tuple[int, str, float]:
    rank = 0 if evaluation == "natural" else (2 if evaluation == "certified" else 1)
    return rank, evaluation, -1.0 if eps is None or pd.isna(eps) else float(eps)


def scores_table(scores: pd.DataFrame, split: str) -> pd.DataFrame:
    """Pivot score rows of one split into the paper's table (metrics in their run order)."""
    rows = scores[scores["split"] == split]
    columns = sorted(
        {(r.evaluation, r.norm if isinstance(r.norm, str) else None, None if pd.isna(r.eps) else float(r.eps)) for r in rows.itertuples()},
        key=lambda c: _column_order(c[0], c[2]),
    )
    table = pd.DataFrame(index=list(dict.fromkeys(rows["metric"])))
    for evaluation, norm, eps in columns:
        match = rows[(rows["evaluation"] == evaluation) & (rows["eps"].isna() if eps is None else (rows["eps"] - eps).abs() < 1e-12)]
        if norm is not None:
            match = match[match["norm"] == norm]
        table[column_label(evaluation, norm, eps)] = match.set_index("metric")["score"]
    table.index.name = "metric"
    return table


def to_markdown(table: pd.DataFrame, *, digits: int = 2) -> str:
    """A GitHub-markdown table; missing cells are blank."""
    header = [table.index.name or ""] + list(table.columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]
    for name, row in table.iterrows():
        cells = ["" if pd.isna(v) else f"{v:.{digits}f}" for v in row]
        lines.append("| " + " | ".join([str(name)] + cells) + " |")
    return "\n".join(lines)
