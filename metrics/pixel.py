"""``pixel-l2``: Euclidean distance in pixel space, the baseline every learned metric must beat."""

from __future__ import annotations

from torch import Tensor

from lipsim_bench.metrics.base import PerceptualMetric, project_bound
from lipsim_bench.metrics.registry import register_metric


@register_metric("pixel-l2", description="l2 norm of the pixel difference (1-Lipschitz)", bundled=True)
@project_bound  # the identity map: exactly 1-Lipschitz
class PixelL2(PerceptualMetric):
    """The identity embedding with Euclidean distance: exactly 1-Lipschitz, certifiable in closed form."""

    distance_kind = "l2"
    lipschitz = 1.0

    def embed(self, x: Tensor) -> Tensor:
        return x

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        return (e_a - e_b).flatten(1).norm(dim=1)
