"""A retrieval or kNN decision as a classifier of the query, for classifier attacks (APGD, PGD, ...).

Every decision the gallery tasks attack is "which set of gallery items holds the query's nearest item": Recall@1
(relevant vs irrelevant), the stability of the top-1 (the clean top-1 vs every other item) and 1-NN classification
(one set per class). So ``x -> logits (N, C)`` with logit ``c = -min_{g in set c} d(embed(x_n), e_g)``: the argmax is
the set of the nearest item, and with two sets cross-entropy is softplus of the margin between the best item of each
(the attack's margin, as TwoAFCClassifier's ``[d1, d0]``). The gallery is embedded once per metric and held fixed;
each step embeds only the queries. Sets are per query (``members``: (N, C, G) booleans); attacks drop finished
queries, and :meth:`restrict` keeps the masks (and the gradient-health counts) aligned with those left.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from lipsim_bench.evaluations.gallery_batches import distance_matrix
from lipsim_bench.evaluations.twoafc import check_differentiable

if TYPE_CHECKING:
    from lipsim_bench.evaluations.grad_health import GradHealth
    from lipsim_bench.metrics import PerceptualMetric


class GalleryClassifier(nn.Module):
    """``x -> -(distance to the nearest gallery item of each set)``, the gallery's embeddings cached.

    ``members``: each query's sets, either (N, C, G) booleans or, for many sets (kNN with many classes, where
    N x C x G would not fit), (N, G) set indices (-1: in no set) with ``n_sets`` = C.
    """

    def __init__(
        self,
        metric: PerceptualMetric,
        e_gallery: Tensor,
        members: Tensor,
        name: str = "",
        health: GradHealth | None = None,
        *,
        n_sets: int | None = None,
    ) -> None:
        super().__init__()
        if members.dim() == 3:  # (N, C, G) booleans -> the set of each item (the first one holding it)
            n_sets, members = members.shape[1], torch.where(members.any(dim=1), members.long().argmax(dim=1), -1)
        if members.dim() != 2 or members.shape[1] != len(e_gallery) or n_sets is None:
            raise ValueError(
                f"members must be (N, C, G) booleans or (N, G) set indices with n_sets, G = {len(e_gallery)} gallery "
                f"items; got {tuple(members.shape)} (n_sets {n_sets})"
            )
        self.metric = metric
        self.e_gallery = e_gallery
        self.sets = members.long()
        self.n_sets = int(n_sets)
        self.name = name or type(metric).__name__  # the registered name, for error messages
        self.health = health  # counts the non-finite / all-zero input gradients attacks take (grad_health.py)

    def restrict(self, index: Tensor) -> GalleryClassifier:
        """The classifier of the queries ``index`` (an attack dropping the finished ones)."""
        health = self.health.restrict(index) if self.health is not None else None
        sets = self.sets[index.to(self.sets.device)]
        return GalleryClassifier(self.metric, self.e_gallery, sets, self.name, health, n_sets=self.n_sets)

    def distances(self, x: Tensor) -> Tensor:
        """``(N, G)`` distances of the queries ``x`` to every gallery item (differentiable in ``x``)."""
        embedded = self.metric.embed(x)
        check_differentiable(self.name, x, embedded)
        return distance_matrix(self.metric, embedded, self.e_gallery, metric_name=self.name)

    def forward(self, x: Tensor) -> Tensor:
        if len(x) != len(self.sets):
            raise ValueError(
                f"batch of {len(x)} queries for {len(self.sets)} cached member sets: call restrict(index) first"
            )
        if self.health is not None:
            x = self.health.watch(x)
        return set_logits(self.distances(x), self.sets, self.n_sets)


def set_logits(distances: Tensor, sets: Tensor, n_sets: int) -> Tensor:
    """``(N, C)``: minus the smallest distance within each set (-inf for an empty set: it never wins).

    A scatter-min over each query's (N, G) set indices: memory of the distances, whatever the number of sets;
    items in no set are +inf, and only each set's nearest item gets a gradient."""
    sets = sets.to(distances.device)
    inf = torch.full((), float("inf"), dtype=distances.dtype, device=distances.device)
    values = torch.where(sets >= 0, distances, inf)
    nearest = torch.full((len(distances), n_sets), float("inf"), dtype=distances.dtype, device=distances.device)
    return -nearest.scatter_reduce(1, sets.clamp_min(0), values, reduce="amin", include_self=True)
