"""Perturbation targets (``--perturb ref|x0|x1|all``): the attacked input and sound l2 radii per target.

A triplet (x_ref, x0, x1) is decided by d0 = d(x_ref, x0) against d1 = d(x_ref, x1). The paper perturbs
only the reference (``ref``); ``x0`` and ``x1`` perturb one of the two candidates; ``all`` perturbs the
three images at once as ONE input ``(N, 3C, H, W)`` (the triplet stacked along channels) with one norm
ball over the concatenation: for l-inf that is the same box on each image, for l2 a *joint* budget
``||(a, b, c)|| <= eps`` shared by the three perturbations (a, b, c their l2 norms).

Radii, with L the Lipschitz bound of ``embed``, e_i = embed(x_i), r_i = ||e_i||, n_i = e_i / r_i:

* l2 distance (d_i = ||e_ref - e_i||). Moving x0 by delta moves e0 by at most L ||delta||, so d0
  moves by at most that (triangle inequality) and d1 not at all: no tie is reached while
  L ||delta|| < |d0 - d1|, hence ``R_x0 = R_x1 = |d0 - d1| / L``. ``all``: d0 moves by at most
  L (a + b), d1 by L (a + c), so d0 - d1 by at most L (2a + b + c) <= L sqrt(6) eps (Cauchy-Schwarz
  with (2, 1, 1)), hence ``R_all = |d0 - d1| / (sqrt(6) L)``.
* cosine distance (d_i = 1 - <n_ref, n_i>). The decision is the order of the angles phi_i =
  angle(n_ref, n_i); let Delta = |phi0 - phi1|. If ||e0' - e0|| <= t < r0, every point of that ball
  lies in the cone of half-angle arcsin(t / r0) around e0 (the distance from e0 to the ray through a
  point at angle theta is r0 sin(theta), or r0 beyond 90 degrees, and it is at most t), so n0 turns by
  at most arcsin(t / r0), and phi0 with it (the angle is a metric on the sphere); the ball also
  misses the origin. No tie while arcsin(L eps / r0) < Delta, hence
  ``R_x0 = r0 sin(min(Delta, pi/2)) / L`` (x1 with r1). This is exact in embedding space (the cap of
  directions is reached) and at least the simpler |s| r0 / (L (1 + |s|)), s = <n_ref, n0 - n1>,
  from the (1/r)-Lipschitz radial projection (|s| <= Delta and sin(x) >= x / (1 + x) on [0, pi/2]).
  ``all``: phi0 and phi1 each move by at most theta_ref + theta_i, so no tie while
  2 theta_ref + theta_0 + theta_1 < Delta, theta_i = arcsin(L a_i / r_i). arcsin is convex with
  arcsin(0) = 0, so for a_i <= eps, arcsin(L a_i / r_i) <= (a_i / eps) A_i with A_i = arcsin(L eps / r_i),
  and by Cauchy-Schwarz the sum is at most B(eps) = sqrt(4 A_ref^2 + A_0^2 + A_1^2). B grows with
  eps: the radius is the largest eps with B(eps) < Delta and L eps < min r_i, found by bisection
  and returned at the lower end of the bracket (sound).

``ref`` keeps the exact radii of :mod:`lipsim_bench.evaluations.radii`. A zero embedding (or a tie) has radius 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Which image(s) of a triplet an attack perturbs; ``ref`` is the paper's protocol.
PERTURB_TARGETS: tuple[str, ...] = ("ref", "x0", "x1", "all")
#: The weights of (ref, x0, x1) in a change of d0 - d1 (the reference moves both distances).
_JOINT_WEIGHTS = (2.0, 1.0, 1.0)
_BISECTION_STEPS = 100


def check_target(perturb: str) -> str:
    if perturb not in PERTURB_TARGETS:
        raise ValueError(f"perturb must be one of {', '.join(PERTURB_TARGETS)}, got {perturb!r}")
    return perturb


def target_input(ref: Tensor, x0: Tensor, x1: Tensor, perturb: str) -> Tensor:
    """The input an attack perturbs: one image of the triplet, or all three stacked along channels."""
    if check_target(perturb) == "all":
        return torch.cat([ref, x0, x1], dim=1)
    return {"ref": ref, "x0": x0, "x1": x1}[perturb]


def split_triplet(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(ref, x0, x1)`` from a stacked ``(N, 3C, H, W)`` input (the inverse of ``target_input(..., "all")``)."""
    if x.shape[1] % 3:
        raise ValueError(f"a stacked triplet needs 3C channels, got shape {tuple(x.shape)}")
    ref, x0, x1 = x.chunk(3, dim=1)
    return ref, x0, x1


def input_dimension(image_shape: tuple[int, ...], perturb: str) -> int:
    """Coordinates of the perturbed input (for the l2 ball holding an l-inf ball): 3x for ``all``."""
    return math.prod(image_shape) * (3 if check_target(perturb) == "all" else 1)


def l2_target_radius(e_ref: Tensor, e0: Tensor, e1: Tensor, lipschitz: float, perturb: str) -> Tensor:
    """Sound l2 radius of a Euclidean-distance decision when ``perturb`` (x0, x1 or all) moves."""
    e_ref, e0, e1 = (t.flatten(1).double() for t in (e_ref, e0, e1))
    gap = ((e_ref - e0).norm(dim=1) - (e_ref - e1).norm(dim=1)).abs()
    scale = math.sqrt(sum(w * w for w in _JOINT_WEIGHTS)) if check_target(perturb) == "all" else 1.0
    return gap / (scale * lipschitz)


def cosine_target_radius(e_ref: Tensor, e0: Tensor, e1: Tensor, lipschitz: float, perturb: str) -> Tensor:
    """Sound l2 radius of a cosine-distance decision when ``perturb`` (x0, x1 or all) moves."""
    e_ref, e0, e1 = (t.flatten(1).double() for t in (e_ref, e0, e1))
    norms = torch.stack([e.norm(dim=1) for e in (e_ref, e0, e1)], dim=1)  # (N, 3): r_ref, r0, r1
    n_ref, n0, n1 = (e / norms[:, i : i + 1].clamp_min(1e-300) for i, e in enumerate((e_ref, e0, e1)))
    gap = (_angle(n_ref, n0) - _angle(n_ref, n1)).abs()  # Delta
    target = check_target(perturb)
    if target in ("x0", "x1"):
        moved = norms[:, 1 if target == "x0" else 2]
        radius = moved * torch.sin(gap.clamp(max=math.pi / 2)) / lipschitz
    elif target == "all":
        radius = _joint_cosine_radius(norms, gap, lipschitz)
    else:
        raise ValueError("the reference's radius is radii.cosine_radius")
    return torch.where((norms > 0).all(dim=1), radius, torch.zeros_like(radius))


def joint_angle_bound(eps: Tensor, norms: Tensor, lipschitz: float) -> Tensor:
    """B(eps) = sqrt(4 A_ref^2 + A_0^2 + A_1^2), A_i = arcsin(L eps / r_i): the most the angle gap can shrink
    under a joint l2 budget eps (inf where L eps >= some r_i, where an embedding may reach the origin)."""
    ratio = lipschitz * eps[:, None] / norms.clamp_min(1e-300)
    weights = torch.tensor(_JOINT_WEIGHTS, dtype=norms.dtype)
    bound = ((weights * torch.asin(ratio.clamp(max=1.0))) ** 2).sum(dim=1).sqrt()
    return torch.where((ratio < 1).all(dim=1), bound, torch.full_like(bound, math.inf))


def _joint_cosine_radius(norms: Tensor, gap: Tensor, lipschitz: float) -> Tensor:
    """The largest eps with B(eps) < Delta, by bisection; the lower end of the bracket, so always sound."""
    low = torch.zeros_like(gap)
    high = norms.min(dim=1).values / lipschitz  # beyond it an embedding may reach the origin
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (low + high)
        safe = joint_angle_bound(mid, norms, lipschitz) < gap
        low, high = torch.where(safe, mid, low), torch.where(safe, high, mid)
    return low


def _angle(u: Tensor, v: Tensor) -> Tensor:
    """Angle between unit vectors, accurate near 0 and pi (2 atan2(||u - v||, ||u + v||))."""
    return 2.0 * torch.atan2((u - v).norm(dim=1), (u + v).norm(dim=1))
