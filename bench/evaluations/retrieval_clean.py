"""``recall`` and ``map``: clean retrieval scores, each query ranking the whole gallery by the metric's distance.

A query's hit@k says whether one of its relevant gallery items is among its k nearest (Recall@k is their mean);
its average precision is the mean, over its relevant items, of the precision at each one's rank (mAP is their
mean). Equal distances rank in gallery order, so every number is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from lipsim_bench.evaluations.base import Context, Evaluation, Kind, PassCost, empty_rows
from lipsim_bench.evaluations.gallery_batches import GalleryBatch, average_precision, check_k, first_relevant_rank
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.metrics import PerceptualMetric

#: The extra Recall@k the footer of a ``recall`` table gives beside the table's own k.
FOOTER_K: tuple[int, ...] = (5, 10)


@dataclass(frozen=True)
class RecallOptions:
    k: int = 1  # a hit: a relevant item among the k nearest


def ranked_columns(item: GalleryBatch) -> dict[str, object]:
    """Per-query rank of the first relevant item (1-based, NaN for none), average precision, clean top-1."""
    order = item.order()
    relevant = item.relevant
    return {
        "rank": first_relevant_rank(order, relevant),
        "ap": average_precision(order, relevant),
        "top1": order[:, 0],
    }


class GalleryClean(Evaluation):
    """Shared by the clean gallery scores: one forward pass per query, the gallery's shared by the run."""

    kind = Kind.CLEAN
    tasks: ClassVar[tuple[str, ...]] = ("retrieval",)

    def flops(self, cost: PassCost, n_triplets: int, threat: object, attacked: float = 1.0) -> float:
        return n_triplets * cost.forward


@register_evaluation
class Recall(GalleryClean):
    """Recall@k on clean queries (the footer adds Recall@5, @10 and mAP)."""

    name = "recall"
    Options = RecallOptions
    sweeps = ("k",)
    description = "Recall@k of clean queries: a relevant gallery item among the k nearest"

    def run(self, metric: PerceptualMetric, batches: Iterable[GalleryBatch], ctx: Context) -> pd.DataFrame:
        parts = []
        for item in batches:
            k = check_k(self.name, self.options.k, item.gallery)
            columns = ranked_columns(item)
            hit = columns["rank"] <= k  # type: ignore[operator]  (NaN: never a hit)
            parts.append(item.rows(self.column, None, np.nan, hit, **columns))  # type: ignore[arg-type]
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()

    def measure(self) -> str:
        return "" if self.options.k == 1 else f"Recall@{self.options.k}"

    def notes(self, metric_name: str, rows: pd.DataFrame) -> list[str]:
        """Recall@5, @10 and mAP (unit k = 1 only: a k sweep says them once)."""
        if self.options.k != 1 or "rank" not in rows.columns or not len(rows):
            return []
        recalls = ", ".join(f"Recall@{k} {100 * (rows['rank'] <= k).mean():.1f}" for k in FOOTER_K)
        return [f"{metric_name}: {recalls}, mAP {100 * rows['ap'].mean():.1f} ({len(rows)} queries)"]


@register_evaluation
class MeanAveragePrecision(GalleryClean):
    """mAP on clean queries: every relevant item's rank counts, not only the first."""

    name = "map"
    description = "mean average precision of clean queries over the whole gallery"

    def measure(self) -> str:
        return "mAP (mean average precision over the whole ranking)"

    def run(self, metric: PerceptualMetric, batches: Iterable[GalleryBatch], ctx: Context) -> pd.DataFrame:
        parts = []
        for item in batches:
            columns = ranked_columns(item)
            parts.append(item.rows(self.name, None, np.nan, columns["ap"], **columns))  # type: ignore[arg-type]
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()
