"""``knn`` and ``knn-certified``: k-nearest-neighbour classification of images by the metric's distance to a
labelled gallery (the application the LipSim authors promised in their rebuttal).

``knn`` is the clean accuracy of the majority vote of the k nearest gallery items (a tie goes to the label whose
member is nearest). ``knn-certified`` certifies the 1-NN decision: some gallery item of the image's own label stays
nearer than every item of another label (winners: the same label, losers: the others), for every l2 perturbation
of the image below eps (:func:`~lipsim_bench.evaluations.gallery_radii.set_radius`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lipsim_bench.evaluations.base import Context, empty_rows
from lipsim_bench.evaluations.gallery_batches import GalleryBatch, check_k
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.evaluations.retrieval_certified import GalleryCertified
from lipsim_bench.evaluations.retrieval_clean import GalleryClean
from lipsim_bench.metrics import PerceptualMetric


@dataclass(frozen=True)
class KnnOptions:
    k: int = 1  # neighbours that vote


def knn_vote(order: Tensor, gallery_codes: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(N,) predicted label code and the gallery index of its nearest voter: the label most of the k nearest
    carry; among tied labels, the one with the nearest member."""
    nearest = order[:, :k]
    codes = gallery_codes[nearest]  # (N, k)
    counts = torch.zeros(len(order), int(gallery_codes.max()) + 1, dtype=torch.long)
    counts.scatter_add_(1, codes, torch.ones_like(codes))
    votes = counts.gather(1, codes)  # each neighbour's label's count
    first = votes.argmax(dim=1, keepdim=True)  # argmax: the first (nearest) of the best-voted
    return codes.gather(1, first).squeeze(1), nearest.gather(1, first).squeeze(1)


def _labels(item: GalleryBatch, indices: Tensor) -> list[str]:
    return [item.gallery.labels[int(i)] for i in indices]


@register_evaluation
class Knn(GalleryClean):
    """Clean kNN accuracy: the majority label of the k nearest gallery items is the image's."""

    name = "knn"
    Options = KnnOptions
    tasks: ClassVar[tuple[str, ...]] = ("knn",)
    description = "k-nearest-neighbour accuracy of clean images against the labelled gallery"

    def measure(self) -> str:
        return "" if self.options.k == 1 else f"{self.options.k}-NN accuracy (the other columns: 1-NN)"

    def run(self, metric: PerceptualMetric, batches: Iterable[GalleryBatch], ctx: Context) -> pd.DataFrame:
        parts = []
        for item in batches:
            k = check_k(self.name, self.options.k, item.gallery)
            gallery_codes, query_codes = item.gallery.label_codes(list(item.batch["label"]))
            order = item.order()
            predicted, voter = knn_vote(order, gallery_codes, k)
            parts.append(
                item.rows(
                    self.name,
                    None,
                    np.nan,
                    predicted == query_codes,
                    prediction=_labels(item, voter),
                    top1=order[:, 0],
                )
            )
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()


@register_evaluation
class KnnCertified(GalleryCertified):
    """Certified 1-NN accuracy: the nearest gallery item keeps the image's label within the radius."""

    name = "knn-certified"
    tasks: ClassVar[tuple[str, ...]] = ("knn",)
    description = "certified 1-NN accuracy per l2 radius from the metric's Lipschitz bound"

    def decision(self, item: GalleryBatch) -> tuple[Tensor, Tensor, Tensor, dict[str, Any]]:
        same = item.same_label
        top1 = item.order()[:, 0]
        holds = same.gather(1, top1[:, None]).squeeze(1)
        return holds, same, ~same, {"top1": top1, "prediction": _labels(item, top1)}
