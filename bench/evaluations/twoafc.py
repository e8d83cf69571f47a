"""The 2AFC score, exactly as NIGHT and BAPPS define it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    import pandas as pd


def twoafc_agreement(d0: Tensor, d1: Tensor, p: Tensor) -> Tensor:
    """Per-triplet agreement with people: (d0 < d1)(1 - p) + (d1 < d0) p + 0.5 (d0 == d1).

    ``p`` is the fraction of people who judged x1 closer; a metric that picks x0 (d0 < d1) agrees
    with the 1 - p who did the same. Ties count half.
    """
    d0, d1, p = d0.double(), d1.double(), p.double()
    return (d0 < d1) * (1.0 - p) + (d1 < d0) * p + 0.5 * (d0 == d1)


def twoafc_score(d0: Tensor, d1: Tensor, p: Tensor) -> float:
    """Mean agreement in percent."""
    if d0.numel() == 0:
        raise ValueError("2AFC score of an empty set of triplets")
    return 100.0 * float(twoafc_agreement(d0, d1, p).mean())


def size_weighted_mean(scores: Sequence[float], sizes: Sequence[int]) -> float:
    """Mean of per-part scores weighted by part size: NIGHT's headline test number over its halves."""
    weights = torch.tensor(sizes, dtype=torch.float64)
    if weights.sum() <= 0:
        raise ValueError("size-weighted mean of empty parts")
    return float((torch.tensor(scores, dtype=torch.float64) * weights).sum() / weights.sum())


def score_rows(triplets: "pd.DataFrame", *, split: str) -> list[dict[str, object]]:
    """Score rows from per-triplet rows: one per (evaluation, norm, eps) and group, plus the split's.

    ``triplets`` needs columns evaluation, norm, eps, group, agreement. When a split has several
    groups (NIGHT's test halves), the split's row is their size-weighted mean.
    """
    import pandas as pd  # local: keep the tensor functions importable without pandas

    rows: list[dict[str, object]] = []
    keys = ["evaluation", "norm", "eps"]
    for (evaluation, norm, eps), part in triplets.groupby(keys, dropna=False, sort=False):
        groups = list(dict.fromkeys(part["group"]))
        per_group = {g: part.loc[part["group"] == g, "agreement"] for g in groups}
        base = {"evaluation": evaluation, "norm": None if pd.isna(norm) else norm, "eps": None if pd.isna(eps) else float(eps)}
        if groups != [split]:
            for g, agreement in per_group.items():
                rows.append({**base, "split": g, "score": 100.0 * float(agreement.mean()), "n": int(len(agreement))})
        scores = [100.0 * float(a.mean()) for a in per_group.values()]
        sizes = [len(a) for a in per_group.values()]
        rows.append({**base, "split": split, "score": size_weighted_mean(scores, sizes), "n": int(sum(sizes))})
    return rows
