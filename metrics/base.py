"""The contract every perceptual metric adapter fulfils.

A metric is an ``nn.Module`` in eval mode that maps images in [0, 1] pixel space to embeddings.
Resizing and mean/std normalisation live inside :meth:`PerceptualMetric.embed` and are
differentiable, so attacks and certificates work on the raw pixels the dataset gives.
"""

from __future__ import annotations

import sys
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PerceptualMetric(nn.Module):
    """Base class: subclass it, implement :meth:`embed`, override :meth:`distance` if not 1 - cos.

    Class attributes are metadata shown by ``run_bench.py list`` and stored in every result record.
    ``lipschitz`` is a *proven* upper bound on the l2 -> l2 Lipschitz constant of ``embed`` on the
    attacked input space (including any resize inside it), or None when no bound is known; the
    certificate uses it, so never put an estimate there. It may be set on the class or on the
    instance (in ``__init__``); a metric whose bound depends on the image size overrides
    :meth:`lipschitz_for` instead. Either makes the metric certifiable. A declared bound is checked
    (a probe, every attack) but never trusted to skip an attack: only the project's own
    (:func:`bound_proven_by_project`) does that.
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


def declares_bound(metric: PerceptualMetric) -> bool:
    """Whether ``metric`` claims a Lipschitz bound: ``lipschitz`` set (on the class or the instance), or
    ``lipschitz_for`` overridden (a bound that depends on the image size). Either makes it certifiable."""
    return metric.lipschitz is not None or type(metric).lipschitz_for is not PerceptualMetric.lipschitz_for


#: The adapter classes whose bound this project computes or proves itself (computed from the weights,
#: or exact in closed form), by module and qualified name. Fixed here, with no way in from outside: only
#: these may let a run skip attacking a triplet inside its certified radius. A bound a plugin declares
#: (a subclass of one of these included: it may change ``embed``) is checked by every attack instead.
_PROVEN_BY_PROJECT: frozenset[tuple[str, str]] = frozenset(
    {
        ("lipsim_bench.metrics.pixel", "PixelL2"),  # the identity map: exactly 1-Lipschitz
        ("lipsim_bench.metrics.lipsim.metric", "LipSim"),  # network_lipschitz_bound, recomputed on every weight change
    }
)


def class_proven_by_project(cls: type) -> bool:
    """Whether ``cls`` is exactly one of the project's own proven classes (not a subclass, not a namesake)."""
    if (cls.__module__, cls.__qualname__) not in _PROVEN_BY_PROJECT:
        return False
    module = sys.modules.get(cls.__module__)
    return module is not None and getattr(module, cls.__qualname__, None) is cls


def bound_proven_by_project(metric: PerceptualMetric) -> bool:
    """Whether ``metric``'s bound is the project's own: its exact class is one of the project's (a class
    that merely claims the name, or a subclass, is not), and it has a bound."""
    return class_proven_by_project(type(metric)) and metric.lipschitz is not None
