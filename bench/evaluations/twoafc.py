"""The 2AFC decision, in one place: which image a metric picks, agreement with people, labels, logits.

A triplet is (x_ref, x0, x1) with ``p`` = the fraction of people who judged x1 closer to x_ref.
The metric picks x1 when d1 = d(x_ref, x1) < d0 = d(x_ref, x0). As a classifier of the reference,
the logits are ``[d1, d0]``: class 1 (x1 is closer) wins when d0 > d1, so a triplet's label is
round(p). A triplet is *correct* when the metric agrees with the majority (agreement > 1/2);
p == 0.5 triplets are never correct, so there is nothing to flip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.targets import check_target, split_triplet

if TYPE_CHECKING:
    import pandas as pd

    from lipsim_bench.evaluations.grad_health import GradHealth
    from lipsim_bench.metrics import PerceptualMetric


def twoafc_agreement(d0: Tensor, d1: Tensor, p: Tensor) -> Tensor:
    """Per-triplet agreement with people: (d0 < d1)(1 - p) + (d1 < d0) p + 0.5 (d0 == d1).

    A metric that picks x0 (d0 < d1) agrees with the 1 - p who did the same. Ties count half.
    """
    d0, d1, p = d0.double(), d1.double(), p.double()
    return (d0 < d1) * (1.0 - p) + (d1 < d0) * p + 0.5 * (d0 == d1)


def is_correct(d0: Tensor, d1: Tensor, p: Tensor) -> Tensor:
    """The metric agrees with the majority of people (never for p == 0.5)."""
    return twoafc_agreement(d0, d1, p) > 0.5


def twoafc_labels(p: Tensor) -> Tensor:
    """round(p) as class labels of the reference classifier (logit 1 = x1 is closer)."""
    return (p > 0.5).long()


def distances_from_logits(logits: Tensor) -> tuple[Tensor, Tensor]:
    """``(d0, d1)`` from the classifier's ``[d1, d0]`` logits."""
    return logits[:, 1], logits[:, 0]


def twoafc_score(d0: Tensor, d1: Tensor, p: Tensor) -> float:
    """Mean agreement in percent."""
    if d0.numel() == 0:
        raise ValueError("2AFC score of an empty set of triplets")
    return 100.0 * float(twoafc_agreement(d0, d1, p).mean())


class TwoAFCClassifier(nn.Module):
    """``x -> [d(x_ref, x1), d(x_ref, x0)]`` with the unperturbed images' embeddings cached, for classifier attacks.

    ``perturb`` names the input ``x`` (:mod:`lipsim_bench.evaluations.targets`): ``ref`` (the paper's
    protocol: x0 and x1 are embedded once per batch and held fixed; recomputing them every step gives
    the same gradients and costs up to 3x more), ``x0`` or ``x1`` (the reference and the other image
    cached, ``e_ref`` required), or ``all``: the triplet stacked along channels ``(N, 3C, H, W)``, one
    input under one norm ball (l-inf: a box per image; l2: one joint budget). Attacks drop
    finished examples; :meth:`restrict` keeps the cached embeddings aligned with those left.
    """

    def __init__(
        self,
        metric: PerceptualMetric,
        e0: Tensor,
        e1: Tensor,
        name: str = "",
        health: GradHealth | None = None,
        *,
        e_ref: Tensor | None = None,
        perturb: str = "ref",
    ) -> None:
        super().__init__()
        if check_target(perturb) in ("x0", "x1") and e_ref is None:
            raise ValueError(f"perturbing {perturb} needs the reference's embedding e_ref")
        self.metric = metric
        self.e0 = e0
        self.e1 = e1
        self.e_ref = e_ref
        self.perturb = perturb
        self.name = name or type(metric).__name__  # the registered name, for error messages
        self.health = health  # counts the non-finite / all-zero input gradients attacks take (grad_health.py)

    @classmethod
    def from_images(
        cls,
        metric: PerceptualMetric,
        x0: Tensor,
        x1: Tensor,
        name: str = "",
        *,
        ref: Tensor | None = None,
        perturb: str = "ref",
    ) -> TwoAFCClassifier:
        with torch.no_grad():
            if ref is None:
                e0, e1 = metric.embed(torch.cat([x0, x1])).chunk(2)
                return cls(metric, e0, e1, name, perturb=perturb)
            e_ref, e0, e1 = metric.embed(torch.cat([ref, x0, x1])).chunk(3)
        return cls(metric, e0, e1, name, e_ref=e_ref, perturb=perturb)

    def restrict(self, index: Tensor) -> TwoAFCClassifier:
        health = self.health.restrict(index) if self.health is not None else None
        e_ref = self.e_ref[index] if self.e_ref is not None else None
        return TwoAFCClassifier(
            self.metric, self.e0[index], self.e1[index], self.name, health, e_ref=e_ref, perturb=self.perturb
        )

    def forward(self, x_ref: Tensor) -> Tensor:
        if len(x_ref) != len(self.e0):
            raise ValueError(
                f"batch of {len(x_ref)} references for {len(self.e0)} cached pairs: call restrict(index) first"
            )
        if self.health is not None:
            x_ref = self.health.watch(x_ref)
        e_ref, e0, e1 = self._embeddings(x_ref)
        return torch.stack([self.metric.distance(e_ref, e1), self.metric.distance(e_ref, e0)], dim=1)

    def _embeddings(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(e_ref, e0, e1)``: the perturbed input embedded (one call for a stacked triplet), the rest cached."""
        if self.perturb == "all":
            embedded = self.metric.embed(torch.cat(split_triplet(x)))
            check_differentiable(self.name, x, embedded)
            e_ref, e0, e1 = embedded.chunk(3)
            return e_ref, e0, e1
        embedded = self.metric.embed(x)
        check_differentiable(self.name, x, embedded)
        if self.perturb == "x0":
            return self.e_ref, embedded, self.e1  # type: ignore[return-value]
        if self.perturb == "x1":
            return self.e_ref, self.e0, embedded  # type: ignore[return-value]
        return embedded, self.e0, self.e1


def check_differentiable(name: str, x: Tensor, e: object) -> None:
    """An embedding cut off from its input's graph makes every gradient attack a silent no-op."""
    if x.requires_grad and torch.is_grad_enabled() and not (isinstance(e, Tensor) and e.requires_grad):
        raise BenchError(
            f"metric {name!r}: embed returned a tensor without gradient (detached, or computed under no_grad/numpy) "
            "for inputs that require one; attacks need gradients through embed, so keep it in torch autograd"
        )


def size_weighted_mean(scores: Sequence[float], sizes: Sequence[int]) -> float:
    """Mean of per-part scores weighted by part size: NIGHT's headline test number over its halves."""
    weights = torch.tensor(sizes, dtype=torch.float64)
    if weights.sum() <= 0:
        raise ValueError("size-weighted mean of empty parts")
    return float((torch.tensor(scores, dtype=torch.float64) * weights).sum() / weights.sum())


def score_rows(triplets: pd.DataFrame, *, split: str) -> list[dict[str, object]]:
    """Score rows from per-triplet rows: one per (evaluation, norm, eps) and group, plus the split's.

    ``triplets`` needs columns evaluation, norm, eps, group, agreement. When a split has several
    groups (NIGHT's test halves), the split's row is their size-weighted mean; a split whose
    triplets all fall in one group gets only its own row (the same number twice would be counted twice).
    """
    import pandas as pd  # local: keep the tensor functions importable without pandas

    rows: list[dict[str, object]] = []
    keys = ["evaluation", "norm", "eps"]
    for (evaluation, norm, eps), part in triplets.groupby(keys, dropna=False, sort=False):
        groups = list(dict.fromkeys(part["group"]))
        per_group = {g: part.loc[part["group"] == g, "agreement"] for g in groups}
        base = {
            "evaluation": evaluation,
            "norm": None if pd.isna(norm) else norm,
            "eps": None if pd.isna(eps) else float(eps),
        }
        if len(groups) > 1:
            for g, agreement in per_group.items():
                rows.append({**base, "split": g, "score": 100.0 * float(agreement.mean()), "n": int(len(agreement))})
        scores = [100.0 * float(a.mean()) for a in per_group.values()]
        sizes = [len(a) for a in per_group.values()]
        rows.append({**base, "split": split, "score": size_weighted_mean(scores, sizes), "n": int(sum(sizes))})
    return rows
