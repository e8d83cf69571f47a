"""Certified radii of set decisions: some gallery item of a "winner" set stays strictly nearer to the query than
every item of a "loser" set, for every query perturbation of l2 norm below the radius.

The 2AFC certificate (:mod:`lipsim_bench.evaluations.radii`, reference perturbed) generalised to the nearest of
many. For a fixed gallery each pairwise decision "w nearer than l" is linear in the query's embedding e, so its
radius is its margin over L times the length of its normal:

* cosine: margin <e, u_w - u_l> (u = g / ||g||), normal u_w - u_l;
* l2: margin <e - (g_w + g_l) / 2, g_l - g_w> = (||e - g_l||^2 - ||e - g_w||^2) / 2, normal g_l - g_w.

Winner w keeps beating every loser within min over losers of those radii (0 where w is not nearer now), and the
set decision holds within the best winner's: R = max_w min_l r(w, l). Only winners nearer than the nearest loser
can give more than 0, so only those are computed, a chunk of (query, winner) pairs at a time against the whole
gallery (memory bounded by :data:`CHUNK_ELEMENTS`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: (query, winner) pairs x gallery items handled at once.
CHUNK_ELEMENTS = 1 << 22


def set_radius(
    distance_kind: str, e_query: Tensor, e_gallery: Tensor, winners: Tensor, losers: Tensor, lipschitz: float
) -> Tensor:
    """(N,) float64 sound l2 input radius within which some winner stays strictly nearer than every loser;
    0 where there is no winner (or none is nearer than every loser now), inf where there is no loser."""
    if distance_kind not in ("cosine", "l2"):
        raise ValueError(f"no certificate for distance kind {distance_kind!r}; known: cosine, l2")
    if not (lipschitz > 0 and math.isfinite(lipschitz)):
        raise ValueError(f"a Lipschitz bound must be positive and finite, got {lipschitz}")
    q, g = e_query.detach().flatten(1).double().cpu(), e_gallery.detach().flatten(1).double().cpu()
    winners, losers = winners.bool().cpu(), losers.bool().cpu()
    if winners.shape != (len(q), len(g)) or losers.shape != winners.shape:
        raise ValueError(
            f"winners and losers must be (queries, gallery) = {(len(q), len(g))}, got {tuple(winners.shape)} and {tuple(losers.shape)}"
        )
    if distance_kind == "cosine":
        points = _unit(g)
        closeness = q @ points.T  # larger is nearer: 1 - cos = 1 - closeness / ||e||
    else:
        points = g
        closeness = -0.5 * torch.cdist(q, g, compute_mode="donot_use_mm_for_euclid_dist").square()
    nearest_loser = torch.where(losers, closeness, torch.full_like(closeness, -math.inf)).amax(dim=1)
    candidates = (winners & (closeness > nearest_loser[:, None])).nonzero()  # (P, 2): query, winner
    radius = torch.zeros(len(q), dtype=torch.float64)
    per_chunk = max(1, CHUNK_ELEMENTS // max(1, len(g)))
    for start in range(0, len(candidates), per_chunk):
        n, w = candidates[start : start + per_chunk].unbind(dim=1)
        gap = torch.cdist(points[w], points, compute_mode="donot_use_mm_for_euclid_dist")  # (c, G): ||normal||
        margin = closeness[n, w][:, None] - closeness[n]
        pair = torch.where((gap > 0) & (margin > 0), margin / (lipschitz * gap.clamp_min(1e-300)), 0.0)
        pair = torch.where(losers[n], pair, math.inf).amin(dim=1)  # the winner's radius against every loser
        radius.scatter_reduce_(0, n, pair, reduce="amax")
    return radius


def _unit(e: Tensor) -> Tensor:
    """Rows scaled to unit norm (zero rows stay zero), as :mod:`lipsim_bench.evaluations.radii` does."""
    norm = e.norm(dim=1, keepdim=True)
    return e / torch.where(norm > 0, norm, torch.ones_like(norm))
