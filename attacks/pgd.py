"""Plain PGD (Madry et al. 2018) with a fixed step, l2 and linf: the baseline APGD is compared with.

Output per example: the FIRST iterate (random start included) that the model misclassifies, else
the last iterate of the last restart run on it. Keeping the first success matters because PGD with a
fixed step can leave the misclassified region again (foolbox's ``L2PGD`` returns the last iterate
and so loses those successes). Examples misclassified before the attack are returned unchanged.
"""

from __future__ import annotations

import math

import torch

from lipsim_bench.attacks.base import (
    LOSSES,
    MAX_STEPS,
    Attack,
    Model,
    Noise,
    Norm,
    clamp_to_image,
    input_gradient,
    predict,
    project,
    restrict,
)
from lipsim_bench.attacks.registry import register_attack


def _random_delta(
    x: torch.Tensor, norm: Norm, eps: float, gen: torch.Generator, noise: Noise | None = None
) -> torch.Tensor:
    """Uniform in the linf box, or uniform in the l2 ball (gaussian direction, radius eps * U^(1/d)).

    ``noise(sample, shape)`` draws the random numbers (default: ``sample(shape, generator=gen)``)."""
    draw = noise or (lambda sample, shape: sample(shape, generator=gen))
    if norm == "linf":
        delta = (2 * draw(torch.rand, x.shape) - 1) * eps
    else:
        direction = draw(torch.randn, x.shape)
        direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
        radius = eps * draw(torch.rand, (x.shape[0],)) ** (1.0 / x[0].numel())
        delta = direction * radius.view(-1, *[1] * (x.dim() - 1))
    return clamp_to_image(x, delta.to(x))


def _ascent_direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Steepest-ascent direction of unit norm: sign (linf) or the normalised gradient (l2)."""
    if norm == "linf":
        return grad.sign()
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / norms.view(-1, *[1] * (grad.dim() - 1))


@register_attack
class PGD(Attack):
    """Projected gradient ascent on the loss with a fixed step ``step_size`` (default 2.5 eps / steps)."""

    name = "pgd"

    def __init__(
        self,
        norm: Norm,
        eps: float,
        steps: int = 100,
        step_size: float | None = None,
        restarts: int = 1,
        random_start: bool = True,
        loss: str = "ce",
        seed: int = 0,
    ) -> None:
        if steps < 1 or restarts < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {steps}, {restarts}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if steps > MAX_STEPS:
            raise ValueError(f"steps must be at most {MAX_STEPS}, got {steps}")
        step_size = 2.5 * float(eps) / steps if step_size is None else float(step_size)
        if not (math.isfinite(step_size) and step_size > 0):
            raise ValueError(f"step_size must be a positive finite number, got {step_size}")
        super().__init__(
            norm, eps, steps=steps, step_size=step_size, restarts=restarts,
            random_start=random_start, loss=loss, seed=seed,
        )  # fmt: skip
        self.steps, self.step_size, self.restarts = steps, step_size, restarts
        self.random_start, self.loss, self.seed = random_start, loss, seed

    def perturb(self, model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Restarts run only on the examples no restart has fooled yet."""
        robust = predict(model, x) == y
        x_adv = x.clone()
        gen = torch.Generator().manual_seed(self.seed)
        for _ in range(self.restarts):
            idx = robust.nonzero().flatten()
            if idx.numel() == 0:
                break
            fooled, out = self._single_run(restrict(model, idx), x[idx], y[idx], gen, idx)
            x_adv[idx] = out
            robust[idx[fooled]] = False
        return x_adv

    def _single_run(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, subset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(fooled mask, output)``: first misclassified iterate where fooled, else the last one."""
        noise = lambda sample, shape: self.noise(sample, shape, gen, subset)  # noqa: E731
        delta = _random_delta(x, self.norm, self.eps, gen, noise) if self.random_start else torch.zeros_like(x)
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        out = x.clone()
        for t in range(self.steps + 1):
            point = (x + delta).clamp(0.0, 1.0)  # exact [0, 1] despite rounding in x + (clip - x)
            logits, _, grad = input_gradient(model, point, y, self.loss)
            new = (logits.max(dim=1).indices != y) & ~fooled
            out[new] = point[new]
            fooled |= new
            if t == self.steps or bool(fooled.all()):
                break
            with torch.no_grad():
                delta = delta + self.step_size * _ascent_direction(grad, self.norm)
                delta = clamp_to_image(x, project(delta, self.threat))
        out[~fooled] = point[~fooled]
        return fooled, out
