"""``recall-certified`` and ``stability-certified``: retrieval decisions no query perturbation of l2 norm below eps
can change, for metrics with a Lipschitz bound (the 2AFC certificate generalised to the nearest of many).

Each query's radius is :func:`~lipsim_bench.evaluations.gallery_radii.set_radius` of its decision: the top-1 stays
relevant (winners: the relevant items, losers: the others), or the top-1 stays the clean top-1 (winner: that item,
losers: every other). A query counts at eps when its clean decision holds and its radius exceeds eps. As in
``certified``, a bound the project proves certifies plain cells; a declared one is checked on the data first
(:mod:`lipsim_bench.evaluations.bound_checks`, on triplets made of each query and its two nearest gallery images)
and its cells carry the mark and footer saying nobody proved it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import torch
from torch import Tensor

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import (
    Context,
    EmbeddedBatch,
    Evaluation,
    Kind,
    PassCost,
    checked_call,
    empty_rows,
)
from lipsim_bench.evaluations.bound_checks import PROBE_ROWS, checked_bound
from lipsim_bench.evaluations.certified import (
    BOUND_COLUMN,
    DECLARED,
    DEFAULT_CERTIFIED_EPS,
    declared_bound_note,
    from_declared_bound,
)
from lipsim_bench.evaluations.gallery_batches import GalleryBatch
from lipsim_bench.evaluations.gallery_radii import set_radius
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.metrics import MetricSpec, PerceptualMetric, bound_proven_by_project, declares_bound


def default_certified_eps(dataset: str) -> tuple[float, ...]:
    """The dataset's l2 attack radii and the LipSim paper's certified radii, sorted, each once."""
    from lipsim_bench.datasets import dataset_attack_eps  # here: the datasets' code stays out of the key

    return tuple(sorted({float(eps) for eps in (*dataset_attack_eps(dataset, "l2"), *DEFAULT_CERTIFIED_EPS)}))


@dataclass(frozen=True)
class GalleryCertifiedOptions:
    eps: tuple[float, ...] = DEFAULT_CERTIFIED_EPS  # l2 radii (a run adds its dataset's attack radii)


def triplet_twin(metric: PerceptualMetric, item: GalleryBatch, metric_name: str) -> EmbeddedBatch:
    """The batch's first queries as 2AFC triplets (ref: the query, x0 / x1: its two nearest gallery images), so the
    2AFC checks of a metric's distance kind and declared bound run on this data unchanged."""
    images = item.gallery.images
    if images is None:
        raise BenchError(
            "a gallery certificate needs the gallery's images to check the metric's bound; none were given"
        )
    k = min(PROBE_ROWS, len(item.e_query))
    order = item.order()[:k]
    first, second = order[:, 0], order[:, min(1, order.shape[1] - 1)]
    e_ref = item.e_query[:k]
    e0, e1 = item.gallery.embeddings[first], item.gallery.embeddings[second]
    device = next((t.device for t in list(metric.parameters()) + list(metric.buffers())), torch.device("cpu"))
    with torch.no_grad():
        d0, d1 = (
            checked_call(metric_name, "distance", lambda: metric.distance(e_ref.to(device), e.to(device)), k).cpu()
            for e in (e0, e1)
        )
    batch = {"ref": item.batch["query"][:k], "x0": images(first.tolist()), "x1": images(second.tolist())}
    return EmbeddedBatch(batch, e_ref, e0, e1, d0, d1)


class GalleryCertified(Evaluation):
    """Certified share of queries at each eps: the clean decision, held within its set radius."""

    kind = Kind.CERTIFICATE
    table_rank = 0  # a proof: first among the certificates (as ``certified``)
    Options = GalleryCertifiedOptions
    tasks: ClassVar[tuple[str, ...]] = ("retrieval",)
    perturb_targets = ("ref",)  # the query alone is perturbed

    @classmethod
    def applies_to(cls, spec: MetricSpec) -> bool | None:
        return spec.certifiable()

    @classmethod
    def default_options(cls, dataset: str, seed: int) -> dict[str, Any]:
        return {"eps": default_certified_eps(dataset)}

    def applies(self, metric: PerceptualMetric) -> bool:
        return declares_bound(metric)

    def flops(self, cost: PassCost, n_triplets: int, threat: object, attacked: float = 1.0) -> float:
        return n_triplets * cost.forward

    def decision(self, item: GalleryBatch) -> tuple[Tensor, Tensor, Tensor, dict[str, Any]]:
        """Per query: whether the clean decision is right, the winners and losers (N, G), extra row columns."""
        raise NotImplementedError

    def run(self, metric: PerceptualMetric, batches: Iterable[GalleryBatch], ctx: Context) -> pd.DataFrame:
        if not declares_bound(metric):
            raise BenchError(f"metric {ctx.metric_name!r} has no Lipschitz bound, so it cannot be certified")
        declared = not bound_proven_by_project(metric)
        lipschitz, parts = None, []
        for item in batches:
            if lipschitz is None:  # every query has the dataset's one size: checked once, on the first batch
                lipschitz = checked_bound(metric, triplet_twin(metric, item, ctx.metric_name), ctx.metric_name)
            holds, winners, losers, extra = self.decision(item)
            radius = set_radius(metric.distance_kind, item.e_query, item.gallery.embeddings, winners, losers, lipschitz)
            for eps in self.options.eps:
                parts.append(item.rows(self.name, "l2", eps, holds & (radius > eps), radius=radius, **extra))
        rows = pd.concat(parts, ignore_index=True) if parts else empty_rows()
        return rows.assign(**{BOUND_COLUMN: DECLARED}) if declared and parts else rows

    def score(self, rows: pd.DataFrame, split: str) -> list[dict[str, Any]]:
        """Score rows; those from a declared bound say so (the tables mark their cells)."""
        scores = super().score(rows, split)
        return [{**row, BOUND_COLUMN: DECLARED} for row in scores] if from_declared_bound(rows) else scores

    def notes(self, metric_name: str, rows: pd.DataFrame) -> list[str]:
        """Whose bound certified the cells; how many items some radius certifies, and their median radius."""
        declared = [declared_bound_note(metric_name)] if from_declared_bound(rows) else []
        if "radius" not in rows.columns or not len(rows):
            return declared
        items = rows.drop_duplicates("id")
        certified = items[items["radius"] > 0]
        median = f", median radius {certified['radius'].median():.3f} (l2)" if len(certified) else ""
        return declared + [f"{metric_name} {self.name}: {len(certified)}/{len(items)} certified at some radius{median}"]


@register_evaluation
class RecallCertified(GalleryCertified):
    """Certified Recall@1: the nearest gallery item stays a relevant one."""

    name = "recall-certified"
    description = "certified Recall@1 per l2 radius from the metric's Lipschitz bound"

    def decision(self, item: GalleryBatch) -> tuple[Tensor, Tensor, Tensor, dict[str, Any]]:
        relevant = item.relevant
        top1 = item.order()[:, 0]
        hit = relevant.gather(1, top1[:, None]).squeeze(1)
        return hit, relevant, ~relevant, {"top1": top1}


#: What the stability columns measure: they share the retrieval table, whose title names Recall@1.
STABILITY_MEASURE = "the share of queries whose nearest gallery item is the clean query's own (whatever its label)"


@register_evaluation
class StabilityCertified(GalleryCertified):
    """Certified top-1 stability: the nearest gallery item stays the clean one, whatever its label."""

    name = "stability-certified"
    description = "share of queries whose top-1 no l2 perturbation below eps can change (Lipschitz bound)"

    def decision(self, item: GalleryBatch) -> tuple[Tensor, Tensor, Tensor, dict[str, Any]]:
        top1 = item.order()[:, 0]
        winners = torch.zeros_like(item.distances, dtype=torch.bool)
        winners[torch.arange(len(top1)), top1] = True
        return torch.ones(len(top1), dtype=torch.bool), winners, ~winners, {"top1": top1}

    def measure(self) -> str:
        return STABILITY_MEASURE
