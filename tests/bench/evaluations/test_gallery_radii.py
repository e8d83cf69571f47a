"""The set certificate: the 2AFC radii of radii.py combined as max over winners of min over losers; sound (no
perturbation below it changes the decision) and tight for one winner (one just past it along the worst normal does)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lipsim_bench.evaluations.gallery_radii import set_radius
from lipsim_bench.evaluations.radii import RADIUS_BY_DISTANCE

KINDS = ("cosine", "l2")


def _distances(kind: str, e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    e, g = e.double(), g.double()
    if kind == "l2":
        return torch.cdist(e, g)
    return 1 - (e @ g.T) / (e.norm(dim=1)[:, None] * g.norm(dim=1)[None, :])


def _holds(kind: str, e, g, winners, losers) -> torch.Tensor:
    """Some winner strictly nearer than every loser, per query."""
    d = _distances(kind, e, g)
    best_winner = torch.where(winners, d, math.inf).amin(dim=1)
    nearest_loser = torch.where(losers, d, math.inf).amin(dim=1)
    return winners.any(dim=1) & (best_winner < nearest_loser)


def _case(seed: int, n: int, g: int, d: int, winners_per_query: int | None = None):
    gen = torch.Generator().manual_seed(seed)
    e_query, e_gallery = (
        torch.randn(n, d, generator=gen, dtype=torch.float64),
        torch.randn(g, d, generator=gen, dtype=torch.float64),
    )
    if winners_per_query is None:
        winners = torch.rand(n, g, generator=gen) < 0.35
    else:
        winners = torch.zeros(n, g, dtype=torch.bool)
        winners[torch.arange(n), torch.randint(0, g, (n,), generator=gen)] = True
    losers = ~winners & (torch.rand(n, g, generator=gen) < 0.85)
    return e_query, e_gallery, winners, losers


def _brute(kind, e_query, e_gallery, winners, losers, lipschitz) -> torch.Tensor:
    """max over winners of min over losers of radii.py's pairwise radius (0 where the winner is not nearer)."""
    pairwise, d = RADIUS_BY_DISTANCE[kind], _distances(kind, e_query, e_gallery)
    out = []
    for n in range(len(e_query)):
        best = 0.0
        for w in winners[n].nonzero().flatten().tolist():
            worst = math.inf
            for loser in losers[n].nonzero().flatten().tolist():
                r = float(pairwise(e_query[n : n + 1], e_gallery[w : w + 1], e_gallery[loser : loser + 1], lipschitz))
                worst = min(worst, r if d[n, w] < d[n, loser] else 0.0)
            best = max(best, worst)
        out.append(best)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("kind", KINDS)
def test_set_radius_is_the_pairwise_2afc_radii_combined(kind: str) -> None:
    for seed in range(6):
        case = _case(seed, 5, 9, 6)
        torch.testing.assert_close(set_radius(kind, *case, 2.0), _brute(kind, *case, 2.0), rtol=1e-9, atol=1e-12)


def test_no_winner_is_zero_and_no_loser_is_infinite() -> None:
    e_query, e_gallery = torch.randn(3, 4), torch.randn(5, 4)
    winners = torch.tensor([[False] * 5, [True] + [False] * 4, [True] + [False] * 4])
    losers = torch.tensor([[True] * 5, [False] * 5, [False, True, True, True, True]])
    radius = set_radius("l2", e_query, e_gallery, winners, losers, 1.0)
    assert radius[0] == 0 and radius[1] == math.inf and math.isfinite(radius[2])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    kind=st.sampled_from(KINDS),
    n=st.integers(1, 4),
    g=st.integers(2, 7),
    d=st.integers(2, 5),
    lipschitz=st.floats(0.25, 4.0),
    scale=st.floats(0.0, 0.999),
)
def test_no_perturbation_below_the_radius_changes_the_decision(seed, kind, n, g, d, lipschitz, scale) -> None:
    """Random embedding-space perturbations of norm up to 0.999 * radius * L never change the set decision."""
    e_query, e_gallery, winners, losers = _case(seed, n, g, d)
    radius = set_radius(kind, e_query, e_gallery, winners, losers, lipschitz)
    before = _holds(kind, e_query, e_gallery, winners, losers)
    assert ((radius > 0) <= before).all()  # a positive radius certifies a decision that holds now
    direction = torch.randn(n, d, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    size = torch.where(radius.isfinite(), radius, torch.ones_like(radius)) * lipschitz * scale
    moved = e_query + direction / direction.norm(dim=1, keepdim=True) * size[:, None]
    after = _holds(kind, moved, e_gallery, winners, losers)
    assert (after[radius > 0] == before[radius > 0]).all()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    kind=st.sampled_from(KINDS),
    n=st.integers(1, 4),
    g=st.integers(2, 7),
    d=st.integers(2, 5),
    lipschitz=st.floats(0.25, 4.0),
)
def test_one_step_past_the_radius_along_the_worst_normal_flips_a_single_winner(seed, kind, n, g, d, lipschitz) -> None:
    """One winner per query: along the normal of its nearest-to-flip bisector, 0.999 * radius * L keeps the decision
    and 1.001 * radius * L flips it."""
    e_query, e_gallery, winners, losers = _case(seed, n, g, d, winners_per_query=1)
    radius = set_radius(kind, e_query, e_gallery, winners, losers, lipschitz)
    for i in range(n):
        if not (0 < radius[i] < math.inf):
            continue
        w = int(winners[i].nonzero())
        pairs = [
            (
                float(
                    RADIUS_BY_DISTANCE[kind](e_query[i : i + 1], e_gallery[w : w + 1], e_gallery[j : j + 1], lipschitz)
                ),
                j,
            )
            for j in losers[i].nonzero().flatten().tolist()
        ]
        worst, j = min(pairs)
        assert worst == pytest.approx(float(radius[i]), rel=1e-9)
        if kind == "l2":
            normal = e_gallery[j] - e_gallery[w]  # toward the loser
        else:
            normal = e_gallery[j] / e_gallery[j].norm() - e_gallery[w] / e_gallery[w].norm()
        for factor, holds in ((0.999, True), (1.001, False)):
            moved = e_query[i] + normal / normal.norm() * factor * float(radius[i]) * lipschitz
            assert _holds(kind, moved[None], e_gallery, winners[i : i + 1], losers[i : i + 1]).item() == holds
