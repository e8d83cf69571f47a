"""``direct``: how far can an l2 perturbation of eps move a metric's embedding? (the paper's histograms)

l2 PGD maximising ||f(x + delta) - f(x)||^2 on each reference image, reporting d(x, x + delta)
under the metric's own distance. A diagnostic: its rows go to ``histogram.csv`` and the histogram
figure, not to the score table. An unconstrained metric can be pushed far by a small perturbation,
a 1-Lipschitz one cannot.

For a metric with a Lipschitz bound L, each row also carries ``bound``, a certified upper bound on
d(x, x + delta) over the whole ball (:func:`distance_bound`); a distance the attack found above it
fails the run (the bound is wrong). Metrics without L get no bound (empty cells): the smoothed
embedding's sqrt(2/pi)/sigma route would bound a different metric (the smoothed one), not the
distances drawn here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from lipsim_bench.attacks.base import ThreatModel, check_adversarial, clamp_to_image, project
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import POSITION, Context, EmbeddedBatch, Evaluation, Kind, PassCost, empty_rows
from lipsim_bench.evaluations.bound_checks import checked_bound
from lipsim_bench.evaluations.options import options_dict
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.evaluations.twoafc import check_differentiable
from lipsim_bench.metrics import PerceptualMetric, declares_bound


@dataclass(frozen=True)
class DirectAttack:
    """l2 PGD on the embedding shift; fixed step (default 2.5 eps / steps), random start inside the ball."""

    eps: float
    steps: int = 100
    step_size: float | None = None
    seed: int = 0
    name: str = "direct"

    def config(self) -> dict[str, object]:
        return {"eps": self.eps, "steps": self.steps, "step_size": self._step(), "seed": self.seed}

    def _step(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

    def __call__(self, metric: PerceptualMetric, x: Tensor, metric_name: str = "") -> tuple[Tensor, Tensor]:
        """``(x_adv, d(x, x_adv))`` for a batch of images in [0, 1] (``metric_name`` for error messages)."""
        threat = ThreatModel("l2", self.eps)
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        with torch.no_grad():
            target = metric.embed(x)
        delta = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 1e-3
        delta = clamp_to_image(x, project(delta, threat))
        for _ in range(self.steps):
            delta.requires_grad_(True)
            moved = metric.embed(x + delta)
            check_differentiable(metric_name or type(metric).__name__, delta, moved)
            shift = (moved - target).flatten(1).pow(2).sum()
            (grad,) = torch.autograd.grad(shift, delta)
            with torch.no_grad():
                norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
                delta = clamp_to_image(x, project(delta + self._step() * grad / norm, threat))
        x_adv = (x + delta).detach()
        check_adversarial(x, x_adv, threat)
        with torch.no_grad():
            return x_adv, metric.distance(target, metric.embed(x_adv))


@dataclass(frozen=True)
class DirectOptions:
    eps: float = 1.0  # l2 radius (default by dataset: 0.5 on sample, 1 elsewhere)
    steps: int = 100
    step_size: float | None = None  # default 2.5 eps / steps


@register_evaluation
class Direct(Evaluation):
    """d(x, x + delta) under the direct attack, per reference image."""

    name = "direct"
    kind = Kind.DIAGNOSTIC
    batch_dependent = True  # the random start is drawn per batch
    version = 2  # 2: rows carry the certified ``bound`` (and are checked against it)
    Options = DirectOptions
    output_csv = "histogram.csv"
    figures = ("lipsim_bench.report.histograms:draw",)
    description = "d(x, x + delta) under l2 PGD on the embedding (histograms)"

    @classmethod
    def default_options(cls, dataset: str, seed: int) -> dict[str, Any]:
        # the dataset's second l2 attack radius: 0.5 on the 64x64 sample set, 1 on NIGHT (and elsewhere); imported
        # here so the datasets' code stays out of the code fingerprint (the radius enters the key as an option value)
        from lipsim_bench.datasets import dataset_attack_eps

        return {"eps": dataset_attack_eps(dataset, "l2")[1]}

    def attack(self, seed: int) -> DirectAttack:
        o = self.options
        if not 1 <= o.steps <= 100_000:
            raise BenchError(f"direct.steps must be between 1 and 100000, got {o.steps}")
        if o.step_size is not None and not (math.isfinite(o.step_size) and o.step_size > 0):
            raise BenchError(
                f"direct.step_size must be a positive number (or none for 2.5 eps / steps), got {o.step_size}"
            )
        return DirectAttack(eps=self.options.eps, steps=self.options.steps, step_size=self.options.step_size, seed=seed)

    def resolved(self, threat: ThreatModel | None, seed: int) -> dict[str, Any]:
        return {**options_dict(self.options), **self.attack(seed).config()}

    def flops(self, cost: PassCost, n_triplets: int, threat: ThreatModel | None, attacked: float = 1.0) -> float:
        return n_triplets * (self.options.steps * cost.forward_backward + 2 * cost.forward)

    def label(self, threat: ThreatModel | None) -> str:
        return f"direct eps {self.options.eps:g}"

    def run(self, metric: PerceptualMetric, batches: Iterable[EmbeddedBatch], ctx: Context) -> pd.DataFrame:
        attack = self.attack(ctx.seed)
        parts = []
        for item in batches:
            batch = item.batch
            _, distance = attack(metric, batch["ref"].to(ctx.device), ctx.metric_name)
            distance = distance.double().cpu()
            bound = batch_bound(metric, item, attack.eps, ctx.metric_name)
            check_bound(distance, bound, batch["id"], ctx.metric_name)
            parts.append(
                pd.DataFrame(
                    {
                        POSITION: batch["index"].numpy(),
                        "id": list(batch["id"]),
                        "group": list(batch["group"]),
                        "eps": attack.eps,
                        "distance": distance.numpy(),
                        "bound": bound.numpy(),
                    }
                )
            )
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()

    def score(self, rows: pd.DataFrame, split: str) -> list[dict[str, Any]]:
        return []


def distance_bound(distance_kind: str, ref_norm: Tensor, lipschitz: float, eps: float) -> Tensor:
    """Certified sup of d(x, x + delta) over ||delta||_2 <= eps, from ||e(x) - e(x + delta)|| <= L eps = rho.

    l2 distance: rho. Cosine (1 - cos) with r = ||e(x)||: the embedding stays in the ball of radius rho
    around e(x), whose widest angle from e(x) has sin = rho / r, so 1 - sqrt(1 - (rho / r)^2) when
    rho < r, else the trivial 2 (the ball holds the origin). NaN for other distances (no formula).
    """
    rho = lipschitz * eps
    if distance_kind == "l2":
        return torch.full_like(ref_norm, rho, dtype=torch.float64)
    if distance_kind == "cosine":
        ratio = rho / ref_norm.double().clamp_min(1e-300)
        return torch.where(ratio < 1, 1.0 - torch.sqrt(1.0 - ratio.clamp(max=1.0) ** 2), torch.full_like(ratio, 2.0))
    return torch.full_like(ref_norm, math.nan, dtype=torch.float64)


def batch_bound(metric: PerceptualMetric, item: EmbeddedBatch, eps: float, metric_name: str) -> Tensor:
    """Per-triplet bounds of a batch (the clean reference embeddings give r); NaN without a Lipschitz bound."""
    height, width = item.batch["ref"].shape[-2:]
    ref_norm = item.e_ref.flatten(1).double().norm(dim=1).cpu()
    if not declares_bound(metric):
        return torch.full_like(ref_norm, math.nan)
    return distance_bound(metric.distance_kind, ref_norm, checked_bound(metric, item, metric_name), eps)


def check_bound(distance: Tensor, bound: Tensor, ids: list, metric_name: str) -> None:
    """A found distance above its certified bound is a wrong Lipschitz bound (float32 rounding aside)."""
    over = ~torch.isnan(bound) & (distance > bound * (1 + 1e-5) + 1e-6)
    if over.any():
        i = int(over.nonzero()[0])
        raise BenchError(
            f"distance bound violated: the direct attack moved metric {metric_name!r} by d = {float(distance[i]):.6g} on triplet {ids[i]}, "
            f"above its certified bound {float(bound[i]):.6g} (L eps); the metric's Lipschitz bound is wrong"
        )
