"""A toy metric for the transfer tests (loaded with plugins=): every distance is 0, so every triplet is a tie,
none is correct and its attack perturbs nothing."""

import torch

from lipsim_bench.metrics import PerceptualMetric, register_metric


@register_metric("test-tr-constant", description="a constant embedding (every triplet a tie: nothing to attack)")
class Constant(PerceptualMetric):
    lipschitz = None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return 0 * x.flatten(1)[:, :4] + 1.0
