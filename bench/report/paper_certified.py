"""The paper's certified accuracy beside this project's soft certified score.

LipSim's certified accuracy rounds each triplet's target (p -> 0 or 1) and drops p = 0.5 triplets, while the
``certified`` score here counts soft agreement (p or 1 - p when certified, min(p, 1 - p) otherwise). On a set
with hard votes the two agree; on NIGHT's fractional votes they are on different scales, so a table of such a
run shows both: ``certified`` (soft) and ``certified-paper`` (the paper's definition, from the same rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lipsim_bench.report.intervals import NONE, Interval, _bootstrap, interval, seed_of

#: the table's name of the paper-defined certified score, derived from a ``certified`` unit's rows
PAPER_EVALUATION = "certified-paper"


def _paper_group(rows: pd.DataFrame) -> tuple[float, int]:
    """The paper's certified accuracy (percent) of one group's rows at one eps, and how many triplets it keeps."""
    kept = rows[rows["p"] != 0.5]
    if not len(kept):
        return float("nan"), 0
    hits = kept["correct"].astype(bool) & (kept["radius"] > kept["eps"])
    return 100.0 * float(hits.mean()), len(kept)


def paper_certified(triplets: pd.DataFrame) -> pd.DataFrame:
    """Per certified cell (metric, dataset, split, evaluation, eps): the paper's certified accuracy.

    One row per group (NIGHT's halves) and one per unit split; a split of several groups gets the mean of its
    groups weighted by each group's size before the p = 0.5 triplets are dropped, as the official code weights
    its halves. ``correct`` is this project's (agreement > 1/2), which equals "choice == round(p)" on every
    triplet the paper keeps except exact distance ties (never correct here; the official argmax picks x0).
    """
    columns = ["metric", "dataset", "split", "evaluation", "eps", "paper_score", "paper_n", "dropped"]
    needed = {"evaluation", "kind", "p", "correct", "radius", "eps", "group"}
    if triplets is None or not len(triplets) or not needed <= set(triplets.columns):
        return pd.DataFrame(columns=columns)
    rows = triplets[(triplets["kind"] == "certificate") & (triplets["evaluation"].str.split("(").str[0] == "certified")]
    out = []
    for (metric, dataset, split, evaluation, eps), unit in rows.groupby(
        ["metric", "dataset", "split", "evaluation", "eps"], sort=False
    ):
        parts = []
        for group, part in unit.groupby("group", sort=False):
            score, kept = _paper_group(part)
            parts.append((score, len(part), kept))
            if unit["group"].nunique() > 1:
                out.append([metric, dataset, group, evaluation, eps, score, kept, len(part) - kept])
        sizes = sum(size for _, size, kept in parts if kept)
        weighted = sum(score * size for score, size, kept in parts if kept) / sizes if sizes else float("nan")
        kept_all = sum(kept for *_, kept in parts)
        out.append([metric, dataset, split, evaluation, eps, weighted, kept_all, len(unit) - kept_all])
    return pd.DataFrame(out, columns=columns)


def has_fractional_votes(triplets: pd.DataFrame) -> bool:
    """Whether any certified triplet's target is fractional (NIGHT's votes), where the two definitions differ."""
    if triplets is None or not len(triplets) or not {"p", "kind"} <= set(triplets.columns):
        return False
    p = pd.to_numeric(triplets.loc[triplets["kind"] == "certificate", "p"], errors="coerce")
    return bool(((p > 0) & (p < 1)).any())


def paper_interval(rows: pd.DataFrame, *, seed: int = 0) -> Interval:
    """The 95% interval of the paper's certified accuracy over ``rows`` (one cell's certified rows).

    One group: exact Clopper-Pearson on the kept triplets' hits. Several (NIGHT's halves): the seeded bootstrap
    of the paper's statistic, each half resampled on its own and weighted by its size before the drop.
    """
    samples, sizes = [], []
    for _, part in rows.groupby("group", sort=False):
        kept = part[part["p"] != 0.5]
        if len(kept):
            samples.append((kept["correct"].astype(bool) & (kept["radius"] > kept["eps"])).to_numpy(dtype=float))
            sizes.append(len(part))
    if not samples:
        return NONE
    if len(samples) == 1:
        return interval(samples[0], seed=seed)
    weights = np.asarray(sizes, dtype=float) / sum(sizes)
    if all(np.ptp(s) == 0 for s in samples):
        point = 100.0 * float(sum(w * s.mean() for w, s in zip(weights, samples)))
        return Interval(point, point, "bootstrap")

    def weighted(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        return sum(w * np.mean(s, axis=axis) for w, s in zip(weights, resampled))

    return _bootstrap(samples, weighted, seed)


def _cell_rows(triplets: pd.DataFrame, row: object) -> pd.DataFrame:
    """The certified triplet rows behind one paper score row (a whole split, or one of its groups)."""
    rows = triplets[
        (triplets["kind"] == "certificate")
        & (triplets["metric"] == row.metric)
        & (triplets["dataset"] == row.dataset)
        & (triplets["evaluation"] == row.evaluation)
        & ((pd.to_numeric(triplets["eps"], errors="coerce") - float(row.eps)).abs() < 1e-12)
    ]
    in_group = rows["group"] == row.split
    return rows[in_group] if in_group.any() else rows[rows["split"] == row.split]


def paper_certified_rows(scores: pd.DataFrame, triplets: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Score rows of the paper's certified accuracy, one beside each soft ``certified`` cell, and the footer
    line saying which is which; nothing where every target is 0 or 1 (the two scores are then the same)."""
    if not has_fractional_votes(triplets):
        return scores.iloc[0:0], []
    paper = paper_certified(triplets)
    rows = []
    for r in paper.itertuples():
        soft = scores[
            (scores["metric"] == r.metric)
            & (scores["dataset"] == r.dataset)
            & (scores["split"] == r.split)
            & (scores["evaluation"] == r.evaluation)
            & ((scores["eps"] - float(r.eps)).abs() < 1e-12)
        ]
        if soft.empty or pd.isna(r.paper_score):
            continue
        row = soft.iloc[0].to_dict()
        row.update(evaluation=f"{PAPER_EVALUATION}{r.evaluation[len('certified') :]}", score=float(r.paper_score))
        found = paper_interval(_cell_rows(triplets, r), seed=seed_of(row.get("seed")))
        row.update(n=int(r.paper_n), ci_low=found.low, ci_high=found.high, ci_method=found.method)
        rows.append(row)
    if not rows:
        return scores.iloc[0:0], []
    note = (
        "certified: soft agreement (p or 1 - p when certified, min(p, 1 - p) otherwise); certified-paper: the "
        "paper's certified accuracy from the same rows (targets rounded, p = 0.5 triplets dropped, its n the "
        "triplets kept; its interval exact where one group, else a bootstrap within each half, weighted as the paper)"
    )
    return pd.DataFrame(rows, columns=scores.columns), [note]
