"""The direct attack on an embedding: how far can an l2 perturbation of eps move f(x)?

l2 PGD maximising ||f(x + delta) - f(x)||^2 on single images (the LipSim paper's histogram
experiment), reporting d(x, x + delta) under the metric's own distance for every image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attacks.base import ThreatModel, check_adversarial, clamp_to_image, project
from metrics import PerceptualMetric


@dataclass(frozen=True)
class DirectAttack:
    """l2 PGD on the embedding shift; fixed step (the paper: 0.01), random start inside the ball."""

    eps: float
    steps: int = 100
    step_size: float | None = None
    seed: int = 0
    name: str = "direct"

    def config(self) -> dict[str, object]:
        return {"eps": self.eps, "steps": self.steps, "step_size": self._step(), "seed": self.seed}

    def _step(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

    def __call__(self, metric: PerceptualMetric, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(x_adv, d(x, x_adv))`` for a batch of images in [0, 1]."""
        threat = ThreatModel("l2", self.eps)
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        with torch.no_grad():
            target = metric.embed(x)
        delta = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 1e-3
        delta = clamp_to_image(x, project(delta, threat))
        for _ in range(self.steps):
            delta.requires_grad_(True)
            shift = (metric.embed(x + delta) - target).flatten(1).pow(2).sum()
            (grad,) = torch.autograd.grad(shift, delta)
            with torch.no_grad():
                norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
                delta = clamp_to_image(x, project(delta + self._step() * grad / norm, threat))
        x_adv = (x + delta).detach()
        check_adversarial(x, x_adv, threat)
        with torch.no_grad():
            return x_adv, metric.distance(target, metric.embed(x_adv))
