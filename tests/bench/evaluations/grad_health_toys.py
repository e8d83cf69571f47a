"""Toy metrics for the gradient-health tests (loaded with --plugin): one with NaN input gradients, one with
all-zero ones, and a healthy one; the same colour part gives all three finite, distinct distances."""

import torch
import torch.nn.functional as F

from lipsim_bench.metrics import PerceptualMetric, register_metric


class _ChannelNormalised(PerceptualMetric):
    """Colour means, plus conv features gated by a bias so large every feature is zero, each location's channel
    vector divided by its l2 norm (LPIPS's normalisation). ``safe`` puts an epsilon inside the square root."""

    lipschitz = None
    safe = False

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("weight", 0.1 * torch.randn(4, 3, 3, 3, generator=gen))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = F.conv2d(x, self.weight) - 10.0
        f = h * (h > 0)  # the gate as a mask product: a NaN from above passes it (NaN * 0 = NaN)
        s = (f**2).sum(dim=1, keepdim=True)
        if self.safe:
            n = f / (s + 1e-12).sqrt()
        else:  # no epsilon: 0 / 0 where features vanish, kept out of the forward pass, not of the backward one
            n = torch.where(s > 0, f / s.sqrt(), torch.zeros_like(f))
        return torch.cat([x.mean(dim=(2, 3)) + 0.1, n.flatten(1)], dim=1)


@register_metric("test-gh-nan", description="channel normalisation without epsilon (NaN input gradients)")
class NanGradients(_ChannelNormalised):
    pass


@register_metric("test-gh-healthy", description="channel normalisation with an epsilon (finite gradients)")
class HealthyGradients(_ChannelNormalised):
    safe = True


@register_metric("test-gh-quantised", description="quantised pixels (all-zero input gradients)")
class ZeroGradients(PerceptualMetric):
    lipschitz = None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 8).flatten(1) / 8 + 0.1
