"""``direct``: the certified bound on d(x, x + delta) beside the distances the attack finds.

Linear embeddings give closed forms: k * x with the l2 distance moves by exactly k eps (the bound is tight),
and the cosine bound is reached by the perturbation that turns e(x) the most. A metric that under-declares
its Lipschitz constant is caught by the run's own check.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import Context
from lipsim_bench.evaluations.direct import Direct, DirectOptions, distance_bound
from lipsim_bench.metrics import PerceptualMetric
from tests.bench.evaluations.test_smoothing import embedded

EPS = 0.5


class Scaled(PerceptualMetric):
    """embed = k * the flattened image; ``declared`` is its claimed Lipschitz bound (the truth is k)."""

    def __init__(self, k: float, declared: float | None, kind: str) -> None:
        super().__init__()
        self.k, self.lipschitz, self.distance_kind = k, declared, kind

    def embed(self, x: Tensor) -> Tensor:
        return self.k * x.flatten(1)

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        if self.distance_kind == "l2":
            return (e_a - e_b).norm(dim=1)
        return super().distance(e_a, e_b)


class Ridge(PerceptualMetric):
    """embed = x + (k - 1) <x, u> u for a fixed unit u: k-Lipschitz along u, 1 elsewhere. Random and data pairs
    hardly move along u (about 1 / sqrt(D) of their length), so the bound probe cannot see k; the attack can."""

    def __init__(self, k: float, declared: float, kind: str) -> None:
        super().__init__()
        u = torch.randn(3 * 8 * 8, generator=torch.Generator().manual_seed(1))
        self.register_buffer("u", u / u.norm())
        self.k, self.lipschitz, self.distance_kind = k, declared, kind

    def embed(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        return flat + (self.k - 1) * (flat @ self.u)[:, None] * self.u

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        return (e_a - e_b).norm(dim=1) if self.distance_kind == "l2" else super().distance(e_a, e_b)


def run_direct(metric: PerceptualMetric, n: int = 6):
    gen = torch.Generator().manual_seed(0)
    ref, x0, x1 = (0.3 + 0.4 * torch.rand(n, 3, 8, 8, generator=gen) for _ in range(3))
    item = embedded(metric, ref, x0, x1, torch.full((n,), 0.7))
    return Direct(DirectOptions(eps=EPS, steps=20)).run(metric, [item], Context(torch.device("cpu"), 0, "toy"))


@pytest.mark.parametrize("kind", ["l2", "cosine"])
def test_found_distances_stay_under_the_bound_and_an_under_declared_constant_fails(kind: str) -> None:
    rows = run_direct(Scaled(3.0, 3.0, kind))
    assert rows["bound"].notna().all() and (rows["distance"] <= rows["bound"] * (1 + 1e-5) + 1e-6).all()
    if kind == "l2":  # linear: the attack reaches the ball's edge, so the bound 3 eps is met
        np.testing.assert_allclose(rows["distance"], 3.0 * EPS, rtol=1e-4)
        np.testing.assert_allclose(rows["bound"], 3.0 * EPS, rtol=1e-12)
    with pytest.raises(
        BenchError
    ) as info:  # a uniformly under-declared constant: the bound probe proves it false first
        run_direct(Scaled(3.0, 1.0, kind))
    message = str(info.value)
    assert "\n" not in message and "'toy'" in message and "the bound is false" in message
    with pytest.raises(
        BenchError
    ) as info:  # under-declared along one direction only: past the probe, the attack finds it
        run_direct(Ridge(3.0, 1.5, kind))
    message = str(info.value)
    assert (
        "\n" not in message
        and "distance bound violated" in message
        and "'toy'" in message
        and "Lipschitz bound is wrong" in message
    )


def test_metrics_without_a_bound_get_empty_cells() -> None:
    rows = run_direct(Scaled(1.0, None, "cosine"))
    assert "bound" in rows.columns and rows["bound"].isna().all() and rows["distance"].notna().all()


def test_the_cosine_bound_is_the_widest_turn_inside_the_ball() -> None:
    """e + rho v with v the tangent-then-inward direction reaches angle asin(rho / r): 1 - cos equals the bound."""
    r, rho = 2.0, 0.6
    e = torch.tensor([[r, 0.0]], dtype=torch.float64)
    theta = math.asin(rho / r)
    moved = torch.tensor(
        [[r * math.cos(theta) ** 2, r * math.cos(theta) * math.sin(theta)]], dtype=torch.float64
    )  # tangent point
    assert float((moved - e).norm()) == pytest.approx(rho)
    found = 1.0 - torch.nn.functional.cosine_similarity(e, moved).item()
    assert distance_bound("cosine", torch.tensor([r]), rho / EPS, EPS).item() == pytest.approx(found, rel=1e-12)
    for angle in np.linspace(0.0, 2 * math.pi, 64):  # every other point of the circle of radius rho turns less
        other = e + rho * torch.tensor([[math.cos(angle), math.sin(angle)]], dtype=torch.float64)
        assert 1.0 - torch.nn.functional.cosine_similarity(e, other).item() <= found + 1e-12
    assert distance_bound("cosine", torch.tensor([r]), r / EPS, EPS).item() == 2.0  # the ball holds the origin: trivial
    assert distance_bound("l2", torch.tensor([r]), 4.0, EPS).item() == 4.0 * EPS
    assert math.isnan(distance_bound("lpips", torch.tensor([r]), 1.0, EPS).item())
