"""``pixel-l2``: Euclidean distance in pixel space, the baseline every learned metric must beat."""

from __future__ import annotations

from torch import Tensor

from lipsim_bench.metrics.base import PerceptualMetric
from lipsim_bench.metrics.conventions import NO_RESIZE, THIS_PROJECT, Conventions
from lipsim_bench.metrics.registry import register_metric


@register_metric(
    "pixel-l2",
    description="l2 norm of the pixel difference (1-Lipschitz)",
    bundled=True,
    conventions=Conventions(
        input="identity (the pixels themselves)",
        resize=NO_RESIZE,
        distance="l2 norm of the pixel difference",
        mirrors=THIS_PROJECT,
    ),
)
class PixelL2(PerceptualMetric):
    """The identity embedding with Euclidean distance: exactly 1-Lipschitz, certifiable in closed form.

    Its bound is one the project proves (``lipsim_bench.metrics.base._PROVEN_BY_PROJECT``).
    """

    distance_kind = "l2"
    lipschitz = 1.0

    def embed(self, x: Tensor) -> Tensor:
        return x

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        return (e_a - e_b).flatten(1).norm(dim=1)
