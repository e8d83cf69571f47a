"""A metric's claims checked before a certificate uses them: its distance kind and its Lipschitz bound.

A certified radius trusts two things a metric declares: ``distance_kind`` (which radius formula
applies) and the bound L of ``embed``. Both are checked once per metric, image size and bound, on
the first batch a bound is used with (no extra pass over the data):

* the declared kind against ``distance`` itself on the batch's embeddings (an ``l2`` kind over the
  inherited cosine ``distance`` would certify from the wrong radius);
* a declared L against ||e(x) - e(y)|| / ||x - y|| on the batch's image pairs and on a few seeded
  random nearby pairs: any ratio above L proves the bound false.

A probe can prove a bound false, never true: a bound that passes it is still only declared (the
tables mark its cells), and only the project's own bounds (:func:`metrics.bound_proven_by_project`)
ever spare an attack. Those are computed, so the probe is not run on them.
"""

from __future__ import annotations

import math
import weakref

import torch
from torch import Tensor

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import EmbeddedBatch
from lipsim_bench.evaluations.radii import RADIUS_BY_DISTANCE, lipschitz_bound
from lipsim_bench.metrics import PerceptualMetric, bound_proven_by_project

#: Rows of the batch the probes look at, and the l2 size of the random nearby steps (pixels in [0, 1]).
PROBE_ROWS = 8
PROBE_STEP = 0.5
#: float32 embeddings: a ratio or distance within this relative slack of the claim is no disproof.
RTOL, ATOL = 1e-3, 1e-5

_CHECKED: weakref.WeakKeyDictionary[PerceptualMetric, set[tuple]] = weakref.WeakKeyDictionary()


def checked_bound(metric: PerceptualMetric, item: EmbeddedBatch, metric_name: str) -> float:
    """The metric's bound for this batch's images: a positive finite number, its distance kind and (for
    a declared bound) the bound itself checked on the batch the first time; one line naming the metric otherwise."""
    height, width = (int(s) for s in item.batch["ref"].shape[-2:])
    bound = lipschitz_bound(metric, height, width, metric_name)
    key = (height, width, bound, metric.distance_kind)
    seen = _CHECKED.setdefault(metric, set())
    if key not in seen:
        check_distance_kind(metric, item, metric_name)
        if not bound_proven_by_project(metric):
            check_declared_bound(metric, item, bound, metric_name)
        seen.add(key)
    return bound


def _formulas(e_a: Tensor, e_b: Tensor) -> dict[str, Tensor]:
    a, b = e_a.flatten(1).double(), e_b.flatten(1).double()
    return {"cosine": 1.0 - torch.nn.functional.cosine_similarity(a, b, dim=1), "l2": (a - b).norm(dim=1)}


def check_distance_kind(metric: PerceptualMetric, item: EmbeddedBatch, metric_name: str) -> None:
    """``distance_kind`` must name what ``distance`` computes (the batch's d0, d1 against each formula)."""
    kind = metric.distance_kind
    if kind not in RADIUS_BY_DISTANCE:
        raise BenchError(
            f"metric {metric_name!r}: distance_kind {kind!r} has no certificate (known: {', '.join(RADIUS_BY_DISTANCE)}); "
            "declare the kind its distance() computes, or no Lipschitz bound"
        )
    k = min(PROBE_ROWS, len(item.d0))
    e_ref = torch.cat([item.e_ref[:k], item.e_ref[:k]])
    actual = torch.cat([item.d0[:k], item.d1[:k]]).double().cpu()
    expected = _formulas(e_ref.cpu(), torch.cat([item.e0[:k], item.e1[:k]]).cpu())

    def matches(name: str) -> bool:
        return bool(torch.allclose(actual, expected[name], rtol=RTOL, atol=ATOL))

    if matches(kind):
        return
    other = next((name for name in expected if name != kind and matches(name)), None)
    computes = {"cosine": "1 - cos(e_a, e_b)", "l2": "the Euclidean distance ||e_a - e_b||"}
    found = (
        f"it computes {computes[other]}: set distance_kind = {other!r}"
        if other
        else "it computes neither formula: override distance() to match"
    )
    raise BenchError(
        f"metric {metric_name!r} declares distance_kind {kind!r}, but its distance() is not {computes[kind]} on a probe "
        f"batch ({found}), or the certificate would use the wrong radius"
    )


def check_declared_bound(metric: PerceptualMetric, item: EmbeddedBatch, bound: float, metric_name: str) -> None:
    """No pair may move the embedding by more than ``bound`` times its input distance."""
    ratio, where = max(_data_ratios(item), _nearby_ratios(metric, item, metric_name), key=lambda found: found[0])
    if ratio > bound * (1 + RTOL) + ATOL:
        height, width = item.batch["ref"].shape[-2:]
        raise BenchError(
            f"metric {metric_name!r} declares a Lipschitz bound of {bound:.6g} for {height}x{width} images, but {where} move its "
            f"embedding by {ratio:.6g} per unit of l2 input distance: the bound is false; declare a proven upper bound "
            "(or lipschitz = None: no certificate)"
        )


def _ratio(e_a: Tensor, e_b: Tensor, x_a: Tensor, x_b: Tensor) -> Tensor:
    """||e_a - e_b|| / ||x_a - x_b|| per row (0 where the images coincide)."""
    moved = (e_a.flatten(1).double() - e_b.flatten(1).double()).norm(dim=1)
    step = (x_a.flatten(1).double() - x_b.flatten(1).double()).norm(dim=1)
    return torch.where(step > 1e-6, moved / step.clamp_min(1e-6), torch.zeros_like(step))


def _largest(ratios: Tensor, where: str) -> tuple[float, str]:
    value = float(ratios.max()) if ratios.numel() else 0.0
    return (value if math.isfinite(value) else math.inf), where


def _data_ratios(item: EmbeddedBatch) -> tuple[float, str]:
    """The batch's own image pairs (ref-x0, ref-x1, x0-x1) with their clean embeddings."""
    batch, k = item.batch, min(PROBE_ROWS, len(item.d0))
    ref, x0, x1 = (batch[name][:k].cpu() for name in ("ref", "x0", "x1"))
    e_ref, e0, e1 = (e[:k].cpu() for e in (item.e_ref, item.e0, item.e1))
    ratios = torch.cat([_ratio(e_ref, e0, ref, x0), _ratio(e_ref, e1, ref, x1), _ratio(e0, e1, x0, x1)])
    return _largest(ratios, "pairs of the batch's images")


def _nearby_ratios(metric: PerceptualMetric, item: EmbeddedBatch, metric_name: str) -> tuple[float, str]:
    """References and seeded random points at l2 distance about PROBE_STEP from them (their own generator:
    the run's random streams are untouched)."""
    ref = item.batch["ref"][:PROBE_ROWS]
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(ref.shape, generator=generator, dtype=torch.float64)
    step = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (ref.dim() - 1)) * PROBE_STEP
    nearby = (ref.double() + step).clamp(0.0, 1.0).to(ref.dtype)
    device = next((t.device for t in list(metric.parameters()) + list(metric.buffers())), torch.device("cpu"))
    try:
        with torch.no_grad():
            moved = metric.embed(nearby.to(device)).cpu()
    except Exception as exc:  # a metric that embeds the batch but not these points: one line, never a traceback
        raise BenchError(
            f"metric {metric_name!r}: embed raised {type(exc).__name__} on the bound probe ({exc}); fix the metric's embed"
        ) from None
    return _largest(_ratio(moved, item.e_ref[: len(ref)].cpu(), nearby, ref), "random nearby points")
