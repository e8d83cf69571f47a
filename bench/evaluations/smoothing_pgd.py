"""l2 PGD with expectation over transformation (EOT) on the smoothed 2AFC decision (Salman et al. 2019's SmoothAdv).

The smoothed decision is a vote over Gaussian noise, which has no useful gradient; its soft version
does: the mean over m noisy copies of the base decision's softmax, softmax([d1, d0] / t), where t is
the spread (standard deviation) of the margin d0 - d1 over the first step's noisy copies, so the
soft vote tracks the hard one whatever the metric's distance scale. Each step ascends
-log(mean soft vote for c_A), the certified class, then projects onto the l2 ball of radius eps and
into [0, 1] (noise then goes on top, unclamped, as the smoothing theorem wants).

Every triplet draws its own noise from its own generator (seeded by the caller), so a triplet's
trajectory does not depend on its batch or on how many triplets share a forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lipsim_bench.attacks.base import ThreatModel, check_adversarial, clamp_to_image, project
from lipsim_bench.evaluations.twoafc import TwoAFCClassifier


@dataclass(frozen=True)
class SmoothedPGD:
    """PGD-EOT on the smoothed soft decision; ``step_size`` None: 2.5 eps / steps (as lipsim_bench.attacks.pgd)."""

    eps: float
    sigma: float
    m: int = 16
    steps: int = 20
    step_size: float | None = None
    noise_batch: int = 200  # noisy images per forward pass (triplets are grouped to fit)

    def step(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

    def __call__(self, classifier: TwoAFCClassifier, ref: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        """``x + delta`` (||delta|| <= eps, in [0, 1]) pushing each reference away from its class ``target``."""
        group = max(1, self.noise_batch // self.m)
        parts = []
        for start in range(0, len(ref), group):
            index = torch.arange(start, min(start + group, len(ref)), device=ref.device)
            parts.append(
                self._attack(classifier.restrict(index), ref[index], target[index], seeds[start : start + group])
            )
        x_adv = torch.cat(parts) if parts else ref.clone()
        check_adversarial(ref, x_adv, ThreatModel("l2", self.eps))
        return x_adv

    def _attack(self, classifier: TwoAFCClassifier, ref: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        threat = ThreatModel("l2", self.eps)
        gens = [torch.Generator(device=ref.device).manual_seed(s) for s in seeds]
        repeated = classifier.restrict(torch.arange(len(ref), device=ref.device).repeat_interleave(self.m))
        delta = torch.zeros_like(ref)
        scale: Tensor | None = None
        for _ in range(self.steps):
            noise = torch.stack(
                [torch.randn((self.m, *ref.shape[1:]), generator=g, device=ref.device, dtype=ref.dtype) for g in gens]
            )
            delta.requires_grad_(True)
            with torch.enable_grad():
                x = ((ref + delta).unsqueeze(1) + self.sigma * noise).flatten(0, 1)
                logits = repeated(x).view(len(ref), self.m, 2)  # [d1, d0] of each noisy copy
                if scale is None:
                    margin = (logits[..., 1] - logits[..., 0]).detach()
                    scale = (
                        margin.std(dim=1, keepdim=True).clamp_min(1e-12)
                        if self.m > 1
                        else margin.abs().clamp_min(1e-12)
                    )
                vote = torch.softmax(logits / scale.unsqueeze(-1), dim=-1).mean(dim=1)
                loss = -torch.log(vote.gather(1, target[:, None]).clamp_min(1e-30)).sum()
                (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (ref.dim() - 1)))
                delta = clamp_to_image(ref, project(delta + self.step() * grad / norm, threat))
        return (ref + delta).detach()
