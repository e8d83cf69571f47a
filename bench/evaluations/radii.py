"""Certified radii of 2AFC decisions, for any metric with a proven Lipschitz bound L of ``embed``.

Here the reference is perturbed (``--perturb ref``, the paper's protocol); x0 and x1 stay fixed. The
other targets (x0, x1, all three) have their own radii and derivations in
:mod:`lipsim_bench.evaluations.targets`; :func:`certified_radius` dispatches. Both supported distances make the decision
a *linear* classifier on the reference's embedding e = embed(x_ref), so the exact margin in
embedding space divided by L is a sound radius in input space:

* cosine (1 - cos): with n_i = e_i / ||e_i|| and a = n0 - n1, the metric picks x1 iff
  <e, a> <= 0 (cosine is scale-invariant in e), so R = |<e, a>| / (L ||a||).
* l2 (||e - e_i||): the decision boundary is the bisecting hyperplane of e0 and e1, so
  R = |<e - (e0 + e1) / 2, e1 - e0>| / (L ||e1 - e0||).

The LipSim paper's formula R_paper = |d0 - d1| / ||n0 - n1|| equals R * L / ||e|| (cosine case):
sound only when ||e|| >= 1, and *too large* when the reference embedding has norm below 1.
We compute it for comparison, never to certify.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.targets import check_target, cosine_target_radius, l2_target_radius

if TYPE_CHECKING:
    from lipsim_bench.metrics import PerceptualMetric


def cosine_radius(e_ref: Tensor, e0: Tensor, e1: Tensor, lipschitz: float) -> Tensor:
    """Sound l2 radius of a cosine-distance 2AFC decision; 0 for ties and degenerate pairs."""
    e_ref, e0, e1 = (t.flatten(1).double() for t in (e_ref, e0, e1))
    a = _unit(e0) - _unit(e1)
    norm_a = a.norm(dim=1)
    radius = (e_ref * a).sum(dim=1).abs() / (lipschitz * norm_a)
    return torch.where(norm_a > 0, radius, torch.zeros_like(radius))


def l2_radius(e_ref: Tensor, e0: Tensor, e1: Tensor, lipschitz: float) -> Tensor:
    """Sound l2 radius of a Euclidean-distance 2AFC decision (distance to the bisector / L)."""
    e_ref, e0, e1 = (t.flatten(1).double() for t in (e_ref, e0, e1))
    direction = e1 - e0
    norm_dir = direction.norm(dim=1)
    radius = ((e_ref - 0.5 * (e0 + e1)) * direction).sum(dim=1).abs() / (lipschitz * norm_dir)
    return torch.where(norm_dir > 0, radius, torch.zeros_like(radius))


def paper_radius(d0: Tensor, d1: Tensor, e0: Tensor, e1: Tensor, lipschitz: float = 1.0) -> Tensor:
    """The LipSim paper's |d0 - d1| / ||n0 - n1||: unsound when ||e(x_ref)|| < 1 (see module doc)."""
    a = _unit(e0.flatten(1).double()) - _unit(e1.flatten(1).double())
    norm_a = a.norm(dim=1)
    radius = (d0.double() - d1.double()).abs() / (lipschitz * norm_a)
    return torch.where(norm_a > 0, radius, torch.zeros_like(radius))


RADIUS_BY_DISTANCE = {"cosine": cosine_radius, "l2": l2_radius}
TARGET_RADIUS_BY_DISTANCE = {"cosine": cosine_target_radius, "l2": l2_target_radius}


def certified_radius(
    distance_kind: str, e_ref: Tensor, e0: Tensor, e1: Tensor, lipschitz: float, perturb: str = "ref"
) -> Tensor:
    """Dispatch on the metric's distance kind and the perturbed image(s); an unknown kind cannot be certified.

    For ``perturb="all"`` the radius bounds the joint l2 norm of the three images' perturbations."""
    if distance_kind not in RADIUS_BY_DISTANCE:
        raise ValueError(f"no certificate for distance kind {distance_kind!r}; known: {', '.join(RADIUS_BY_DISTANCE)}")
    if not lipschitz > 0:
        raise ValueError(f"a Lipschitz bound must be positive, got {lipschitz}")
    if check_target(perturb) == "ref":
        return RADIUS_BY_DISTANCE[distance_kind](e_ref, e0, e1, lipschitz)
    return TARGET_RADIUS_BY_DISTANCE[distance_kind](e_ref, e0, e1, lipschitz, perturb)


def lipschitz_bound(metric: PerceptualMetric, height: int, width: int, metric_name: str) -> float:
    """The metric's bound for these images, checked: a zero, negative, infinite or NaN bound would certify nonsense
    (:func:`lipsim_bench.evaluations.bound_checks.checked_bound` also checks it against the metric itself)."""
    value = metric.lipschitz_for(height, width)
    if value is None:
        raise BenchError(
            f"metric {metric_name!r} declares a Lipschitz bound but gives none for {height}x{width} images (lipschitz_for "
            "returned None); return a bound for every image size it embeds, or leave lipschitz and lipschitz_for unset"
        )
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    bound = float(value) if number else math.nan  # type: ignore[arg-type]
    if not (bound > 0 and math.isfinite(bound)):
        raise BenchError(
            f"metric {metric_name!r}: Lipschitz bound {value!r} for {height}x{width} images; it must be a positive finite "
            "number (a proven bound), or None when no bound is known"
        )
    return bound


def certified_agreement(agreement: Tensor, p: Tensor, radius: Tensor, eps: float) -> Tensor:
    """Agreement guaranteed for every reference within ``eps``: a lower bound of the robust score.

    Inside the radius the decision cannot change, so the natural agreement holds. Otherwise the
    worst decision counts: min(p, 1 - p) (picking the side fewer people chose). With rounded
    targets (p in {0, 1}) this is the paper's "correct and radius > eps".
    """
    worst = torch.minimum(p.double(), 1.0 - p.double())
    return torch.where(radius > eps, agreement.double(), worst)


def _unit(e: Tensor) -> Tensor:
    norm = e.norm(dim=1, keepdim=True)
    return e / torch.where(norm > 0, norm, torch.ones_like(norm))
