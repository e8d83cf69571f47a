"""The contract every perceptual metric adapter fulfils.

A metric is an ``nn.Module`` in eval mode that maps images in [0, 1] pixel space to embeddings.
Resizing and mean/std normalisation live inside :meth:`PerceptualMetric.embed` and are
differentiable, so attacks and certificates work on the raw pixels the dataset gives.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PerceptualMetric(nn.Module):
    """Base class: subclass it, implement :meth:`embed`, override :meth:`distance` if not 1 - cos.

    Class attributes are metadata shown by ``run_bench.py list`` and stored in every result record.
    ``lipschitz`` is a *proven* upper bound on the l2 -> l2 Lipschitz constant of ``embed`` on the
    attacked input space (including any resize inside it), or None when no bound is known; the
    certificate uses it, so never put an estimate there.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: "cosine" (distance = 1 - cos of flattened embeddings) or "l2" (Euclidean distance).
    distance_kind: ClassVar[str] = "cosine"
    lipschitz: float | None = None

    def embed(self, x: Tensor) -> Tensor:
        """Map images ``(N, 3, H, W)`` in [0, 1] to what :meth:`distance` needs (``(N, ...)``)."""
        raise NotImplementedError

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        """Per-pair distance ``(N,)`` between two batches of embeddings; 1 - cosine by default."""
        return 1.0 - F.cosine_similarity(e_a.flatten(1), e_b.flatten(1), dim=1)

    def lipschitz_for(self, height: int, width: int) -> float | None:
        """The bound for inputs of this size (metrics that resize inside ``embed`` override it)."""
        return self.lipschitz

    def forward(self, x_a: Tensor, x_b: Tensor) -> Tensor:
        """Distance between two image batches, so a metric can be called like a loss."""
        return self.distance(self.embed(x_a), self.embed(x_b))

    @torch.no_grad()
    def embed_no_grad(self, x: Tensor) -> Tensor:
        """``embed`` for evaluation paths that never need gradients."""
        return self.embed(x)


#: Adapter classes whose ``lipschitz`` this project proves itself (computed from the weights, or exact
#: in closed form). Only these may let a run skip attacking a triplet inside its certified radius: a
#: bound a plugin merely declares is checked by every attack instead (a wrong bound then fails the run).
_PROJECT_BOUNDS: set[type] = set()


def project_bound(cls: type[PerceptualMetric]) -> type[PerceptualMetric]:
    """Class decorator for built-in adapters whose Lipschitz bound the project computes or proves."""
    _PROJECT_BOUNDS.add(cls)
    return cls


def bound_proven_by_project(metric: PerceptualMetric) -> bool:
    """Whether ``metric``'s bound is the project's own (exact class: a subclass may change ``embed``)."""
    return type(metric) in _PROJECT_BOUNDS and metric.lipschitz is not None
