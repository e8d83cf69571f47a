"""Attacked retrieval and kNN: APGD on the query, one unit per threat model, every success checked against the
certificate.

Three decisions, each "which set of gallery items holds the query's nearest item" (:mod:`gallery_classifier`):

* ``recall-apgd``: Recall@1 under attack. Sets {relevant, irrelevant}, label 0: APGD pushes the margin between
  the best relevant and the best irrelevant item (CE on two logits is softplus of it). Only hits are attacked;
  agreement = hit@1 after the attack.
* ``stability-apgd``: the clean top-1, whatever its relevance, against every other item: agreement = the top-1
  unchanged (the LipSim paper's retrieval demo: an adversarial query should retrieve what the clean one does).
* ``knn-apgd``: one set per class present in the gallery, label = the query's class; only correctly classified
  queries are attacked; agreement = the kNN vote (option ``k``, ties to the nearer) still right. With ``k > 1``
  the attack follows the 1-NN class logits (a surrogate) and the rows hold the k-NN vote.

After the attack the distances, the decision and the rows are recomputed from the adversarial queries. A success
whose l2 perturbation lies inside the certified set radius (:func:`gallery_radii.set_radius`) is a BenchError
naming the query: a broken bound or a broken attack, never a number.

As the 2AFC attacks (:mod:`decided`): ``carry`` counts a success at the next smaller radius as found, and
``skip_proven`` counts a query whose set radius under the project's own bound
(:func:`metrics.bound_proven_by_project`) exceeds the threat ball as robust by proof, not attacked (row column
``proven``); ``--verify`` attacks it anyway and the certificate check runs on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lipsim_bench.attacks.apgd import APGD
from lipsim_bench.attacks.base import Attack, DrawRows, ThreatModel
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.adversarial import ADVERSARIAL, AdversarialExamples
from lipsim_bench.evaluations.attack import run_attack
from lipsim_bench.evaluations.base import Context, Evaluation, Kind, PassCost, empty_rows
from lipsim_bench.evaluations.bound_checks import checked_bound
from lipsim_bench.evaluations.decided import as_bool, l2_ball_radius, work_notes
from lipsim_bench.evaluations.gallery_attack_options import APGD_OPTIONS, GalleryAPGDOptions, KnnAPGDOptions, Target
from lipsim_bench.evaluations.gallery_batches import GalleryBatch, check_k, distance_matrix
from lipsim_bench.evaluations.gallery_classifier import GalleryClassifier
from lipsim_bench.evaluations.gallery_radii import set_radius
from lipsim_bench.evaluations.grad_health import GradHealth, grad_notes
from lipsim_bench.evaluations.knn import knn_vote
from lipsim_bench.evaluations.options import options_dict
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.evaluations.retrieval_certified import STABILITY_MEASURE, triplet_twin
from lipsim_bench.metrics import PerceptualMetric, bound_proven_by_project, declares_bound

#: Gallery ids listed per query in the rows (clean and adversarial), for the figure and for reading by eye.
TOP = 5


class GalleryAttackEvaluation(Evaluation):
    """APGD on the queries of a gallery task; subclasses say which decision (sets, labels, outcome)."""

    kind = Kind.ATTACK
    per_threat = True
    batch_dependent = True  # random starts are drawn per batch
    artifacts = (ADVERSARIAL,)
    Options: ClassVar[type] = GalleryAPGDOptions
    #: What a success does to the query, in the certificate's error line.
    broken: ClassVar[str] = "flipped"

    # -- the decision (subclasses) --------------------------------------------------------------------

    def target(self, item: GalleryBatch, top1: Tensor) -> Target:
        raise NotImplementedError

    def outcome(self, item: GalleryBatch, distances: Tensor, top1: Tensor) -> Tensor:
        """(N,) bool: the decision is still right at ``distances`` (clean top-1 ``top1``)."""
        raise NotImplementedError

    # -- the attack -----------------------------------------------------------------------------------

    def attack_options(self) -> dict[str, Any]:
        return {k: v for k, v in options_dict(self.options).items() if k in APGD_OPTIONS}

    def build(self, threat: ThreatModel, seed: int) -> Attack:
        """APGD with the unit's threat model and the run's seed (as AttackEvaluation.build)."""
        try:
            return APGD(norm=threat.norm, eps=threat.eps, seed=seed, **self.attack_options())
        except (TypeError, ValueError) as exc:
            raise BenchError(f"{self.name!r} rejects its options ({exc}); see `python run_bench.py list`") from None

    def resolved(self, threat: ThreatModel | None, seed: int) -> dict[str, Any]:
        values = options_dict(self.options)
        if threat is None:
            return values
        own = {k: v for k, v in values.items() if k not in APGD_OPTIONS}
        return {**{k: v for k, v in self.build(threat, seed).config().items() if k not in ("norm", "eps")}, **own}

    def builds_on(self, threat: ThreatModel | None, threats: tuple[ThreatModel, ...]) -> ThreatModel | None:
        """With ``carry``: the next smaller radius of the same norm (its successes lie inside this ball)."""
        if threat is None or not getattr(self.options, "carry", False):
            return None
        smaller = [t for t in threats if t.norm == threat.norm and t.eps < threat.eps]
        return max(smaller, key=lambda t: t.eps) if smaller else None

    def budget(self) -> int:
        """Passes per attacked query without early stopping: steps + the first gradient, times restarts."""
        return (int(self.options.steps) + 1) * int(self.options.restarts)

    def flops(self, cost: PassCost, n_triplets: int, threat: ThreatModel | None, attacked: float = 1.0) -> float:
        # the clean query embedding, the attack's passes on the queries attacked, one final forward (the gallery is
        # embedded once per metric and shared by every unit)
        return n_triplets * (cost.forward + attacked * self.budget() * cost.forward_backward + cost.forward)

    def notes(self, metric_name: str, rows: pd.DataFrame) -> list[str]:
        grads = [line.replace(" triplets saw", " queries saw") for line in grad_notes(metric_name, self.name, rows)]
        return [
            line.replace(" flips carried", " successes carried") for line in work_notes(metric_name, self.name, rows)
        ] + grads

    def run(self, metric: PerceptualMetric, batches: Iterable[GalleryBatch], ctx: Context) -> pd.DataFrame:
        assert ctx.threat is not None, "attack units are per threat model"
        attack = self.build(ctx.threat, ctx.seed)
        kept = AdversarialExamples() if ctx.artifacts is not None else None
        carried = Carried.from_rows(ctx.prior, ctx.metric_name) if ctx.prior is not None else None
        prove = bool(getattr(self.options, "skip_proven", False)) and bound_proven_by_project(metric)
        on_device: dict[int, Tensor] = {}  # the gallery moved once, not per batch
        parts = []
        for item in batches:
            e_gallery = on_device.setdefault(id(item.gallery), item.gallery.embeddings.to(ctx.device))
            parts.append(self._batch(metric, attack, item, e_gallery, ctx, kept, carried, prove))
        if kept is not None and ctx.artifacts is not None:
            ctx.artifacts(ADVERSARIAL, kept.tensors())
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()

    def _batch(
        self,
        metric: PerceptualMetric,
        attack: Attack,
        item: GalleryBatch,
        e_gallery: Tensor,
        ctx: Context,
        kept: AdversarialExamples | None,
        carried_from: Carried | None = None,
        prove: bool = False,
    ) -> pd.DataFrame:
        """Attack the eligible queries of one batch neither broken at the smaller radius nor proven robust; rows
        carry the adversarial decision and top-5."""
        clean = item.distances.double()
        n = len(clean)
        clean_order = nearest_first(clean)
        top1 = clean_order[:, 0]
        target = self.target(item, top1)
        distances = clean.clone()
        delta_norm = torch.zeros(n, dtype=torch.float64)
        delta_l2 = torch.zeros(n, dtype=torch.float64)  # also for l-inf successes: checked against the l2 radius
        carried = torch.zeros(n, dtype=torch.bool)
        if carried_from is not None:
            carried = target.eligible & carried_from.mask(item)
        radius = self.certified(metric, item, target, ctx.metric_name) if prove else None
        proven = torch.zeros(n, dtype=torch.bool)
        if radius is not None:  # a margin against rounding: a query exactly at the radius is attacked
            ball = l2_ball_radius(attack.norm, attack.eps, tuple(item.batch["query"].shape[1:]))
            proven = target.eligible & ~carried & (radius > ball * (1 + 1e-6) + 1e-9)
        attacked = target.eligible & ~carried & ~proven
        idx = attacked.nonzero().flatten()
        health = GradHealth(n)
        if idx.numel():
            x = item.batch["query"][idx].to(ctx.device)
            sets = target.sets[idx].to(ctx.device)
            classifier = GalleryClassifier(
                metric, e_gallery, sets, ctx.metric_name, health.restrict(idx), n_sets=target.n_sets
            )
            rows = DrawRows(idx, n)  # each query takes the start of its row in the batch, whoever else is attacked
            x_adv = run_attack(attack, classifier, x, target.labels[idx].to(ctx.device), ctx.metric_name, rows)
            with torch.no_grad():
                adversarial = distance_matrix(metric, metric.embed(x_adv), e_gallery, metric_name=ctx.metric_name)
                distances[idx] = adversarial.double().cpu()
            if kept is not None:
                kept.add(item.batch["index"][idx.cpu()], x_adv)
            delta = (x_adv - x).flatten(1)
            norms = delta.norm(dim=1) if attack.norm == "l2" else delta.abs().amax(dim=1)
            delta_norm[idx] = norms.double().cpu()
            delta_l2[idx] = delta.double().norm(dim=1).cpu()
        right = self.outcome(item, distances, top1) & ~carried
        flipped = target.eligible & ~right
        # carried successes were checked at their own radius (the same perturbation)
        self.check_certificate(metric, item, target, flipped & ~carried, attack.norm, delta_l2, ctx.metric_name, radius)
        adv_order = nearest_first(distances)
        frame = item.rows(
            self.name,
            attack.norm,
            attack.eps,
            right.double(),
            delta_norm=delta_norm,
            delta_l2=delta_l2,
            top1=top1,
            adv_top1=adv_order[:, 0],
            top5=top_ids(clean_order, item.gallery.ids),
            adv_top5=top_ids(adv_order, item.gallery.ids),
        )
        frame = frame.assign(
            flipped=flipped.numpy(),
            attacked=attacked.numpy(),
            carried=carried.numpy(),
            proven=proven.numpy(),
            **health.columns(),
        )
        return carried_from.fill(frame, carried) if carried_from is not None and carried.any() else frame

    def certified(
        self, metric: PerceptualMetric, item: GalleryBatch, target: Target, metric_name: str
    ) -> Tensor | None:
        """(N,) the set radius of each query's decision under the metric's bound; None: no bound or no certificate."""
        if target.winners is None or target.losers is None or not declares_bound(metric):
            return None
        lipschitz = checked_bound(metric, triplet_twin(metric, item, metric_name), metric_name)
        return set_radius(
            metric.distance_kind, item.e_query, item.gallery.embeddings, target.winners, target.losers, lipschitz
        )

    def check_certificate(
        self,
        metric: PerceptualMetric,
        item: GalleryBatch,
        target: Target,
        flipped: Tensor,
        norm: str,
        delta_l2: Tensor,
        metric_name: str,
        radius: Tensor | None = None,
    ) -> None:
        """A success inside the certified set radius (l2; an l-inf success by its l2 norm) is a broken bound."""
        if not flipped.any():
            return
        radius = radius if radius is not None else self.certified(metric, item, target, metric_name)
        if radius is None:
            return
        violated = flipped & (radius.double() > delta_l2.double() * (1 + 1e-6) + 1e-9)
        if violated.any():
            i = int(violated.nonzero()[0])
            raise BenchError(
                f"certificate violated: query {item.batch['id'][i]} was {self.broken} ({self.name}, {norm} attack) by a "
                f"perturbation of l2 norm {float(delta_l2[i]):.6g} inside its certified radius {float(radius[i]):.6g}; "
                "the Lipschitz bound of this metric is wrong"
            )


@dataclass(frozen=True)
class Carried:
    """The successes of the unit at the next smaller radius (its rows, one per dataset position)."""

    rows: pd.DataFrame

    #: Columns a carried success takes over from the smaller radius (the same perturbation).
    COLUMNS: ClassVar[tuple[str, ...]] = ("delta_norm", "delta_l2", "adv_top1", "adv_top5")

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, metric_name: str) -> Carried:
        missing = [c for c in ("id", "flipped", *cls.COLUMNS) if c not in rows.columns]
        if missing:
            raise BenchError(
                f"metric {metric_name!r}: the smaller radius's stored rows lack {', '.join(missing)}; "
                "delete that record (or the run folder) and rerun"
            )
        return cls(rows.reset_index(drop=True))

    def _positions(self, item: GalleryBatch) -> np.ndarray:
        positions = item.batch["index"].numpy()
        ids = self.rows["id"].astype(str).to_numpy()
        if positions.size and (
            positions.max() >= len(ids) or list(ids[positions]) != [str(i) for i in item.batch["id"]]
        ):
            raise BenchError(
                "the smaller radius's stored rows are for other queries; delete the run folder's records and rerun"
            )
        return positions

    def mask(self, item: GalleryBatch) -> Tensor:
        """(N,) bool: the batch's queries broken at the smaller radius."""
        return torch.from_numpy(as_bool(self.rows["flipped"]).copy()[self._positions(item)])

    def fill(self, frame: pd.DataFrame, carried: Tensor) -> pd.DataFrame:
        """``frame`` with the carried queries' adversarial columns taken from the smaller radius."""
        positions = frame["position"].to_numpy()[carried.numpy()]
        frame = frame.copy()
        for column in self.COLUMNS:
            frame.loc[carried.numpy(), column] = self.rows[column].to_numpy()[positions]
        return frame


def top_ids(order: Tensor, ids: list[str], k: int = TOP) -> list[str]:
    """The ``k`` nearest gallery ids per query (``order``: nearest first), space-joined."""
    return [" ".join(ids[g] for g in row) for row in order[:, :k].tolist()]


def nearest_first(distances: Tensor) -> Tensor:
    """(N, G) gallery indices nearest first, equal distances in gallery order (as GalleryBatch.order)."""
    return torch.sort(distances, dim=1, stable=True).indices


def hit_at_1(relevant: Tensor, distances: Tensor) -> Tensor:
    """(N,) bool: the nearest gallery item (first in gallery order on ties) is relevant."""
    return relevant.gather(1, nearest_first(distances)[:, :1]).squeeze(1)


@register_evaluation
class RecallAPGD(GalleryAttackEvaluation):
    name = "recall-apgd"
    tasks: ClassVar[tuple[str, ...]] = ("retrieval",)
    figures: ClassVar[tuple[str, ...]] = ("lipsim_bench.report.retrieval_figure:draw",)
    description = "Recall@1 under APGD on the query (margin: best relevant vs best irrelevant item)"
    broken = "pushed off its relevant items"

    def target(self, item: GalleryBatch, top1: Tensor) -> Target:
        relevant = item.relevant.bool()
        eligible = hit_at_1(relevant, item.distances) & (~relevant).any(dim=1)
        labels = torch.zeros(len(relevant), dtype=torch.long)
        return Target((~relevant).long(), 2, labels, eligible, relevant, ~relevant)

    def outcome(self, item: GalleryBatch, distances: Tensor, top1: Tensor) -> Tensor:
        return hit_at_1(item.relevant.bool(), distances)


@register_evaluation
class StabilityAPGD(GalleryAttackEvaluation):
    name = "stability-apgd"
    tasks: ClassVar[tuple[str, ...]] = ("retrieval",)
    description = "top-1 unchanged under APGD on the query (the clean top-1 vs every other gallery item)"
    broken = "moved off its clean top-1"

    def measure(self) -> str:
        return STABILITY_MEASURE

    def target(self, item: GalleryBatch, top1: Tensor) -> Target:
        first = torch.nn.functional.one_hot(top1, item.distances.shape[1]).bool()
        eligible = (~first).any(dim=1)  # every query, unless the gallery has one item
        return Target((~first).long(), 2, torch.zeros(len(top1), dtype=torch.long), eligible, first, ~first)

    def outcome(self, item: GalleryBatch, distances: Tensor, top1: Tensor) -> Tensor:
        return nearest_first(distances)[:, 0] == top1


@register_evaluation
class KnnAPGD(GalleryAttackEvaluation):
    name = "knn-apgd"
    tasks: ClassVar[tuple[str, ...]] = ("knn",)
    Options = KnnAPGDOptions
    description = "kNN accuracy under APGD on the query (one logit per class: minus its nearest item's distance)"
    broken = "misclassified"

    def measure(self) -> str:
        return "" if int(self.options.k) == 1 else f"{self.options.k}-NN accuracy (the other columns: 1-NN)"

    def target(self, item: GalleryBatch, top1: Tensor) -> Target:
        gallery, queries = item.gallery.label_codes(list(item.batch["label"]))
        n_classes = int(gallery.max()) + 1
        eligible = self.outcome(item, item.distances, top1) & (n_classes > 1)
        same = gallery[None, :] == queries[:, None]
        sides = (same, ~same) if int(self.options.k) == 1 else (None, None)  # the certificate is 1-NN's
        sets = gallery.expand(len(queries), -1)  # set = class, the same for every query
        return Target(sets, n_classes, queries.clamp_min(0), eligible, *sides)

    def outcome(self, item: GalleryBatch, distances: Tensor, top1: Tensor) -> Tensor:
        gallery, queries = item.gallery.label_codes(list(item.batch["label"]))
        k = check_k(self.name, int(self.options.k), item.gallery)
        return knn_vote(nearest_first(distances), gallery, k)[0] == queries
