"""``certified``: certified 2AFC scores from sound radii, for metrics with a Lipschitz bound.

A bound the project proves itself (:func:`metrics.bound_proven_by_project`) certifies plain cells; a
bound a metric only declares is checked on the data first (:mod:`lipsim_bench.evaluations.bound_checks`)
and its cells carry a mark and a footer saying nobody proved it.

Radii come from :mod:`lipsim_bench.evaluations.radii` (exact margin in embedding space over L) for the
run's perturbation target (``--perturb``: the reference, x0, x1, or all three under one joint l2 budget,
:mod:`lipsim_bench.evaluations.targets`); with the reference perturbed, the paper's formula is computed
beside them for comparison (it is unsound when ||e(x_ref)|| < 1), and the table notes how often it
exceeds the sound radius.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import Context, EmbeddedBatch, Evaluation, Kind, empty_rows, natural_agreement
from lipsim_bench.evaluations.bound_checks import checked_bound
from lipsim_bench.evaluations.radii import certified_agreement, certified_radius, paper_radius
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.metrics import MetricSpec, PerceptualMetric, bound_proven_by_project, declares_bound

#: Per-triplet column and score-row field naming a bound the metric declares (absent for the project's own),
#: and the mark its cells carry in the tables.
BOUND_COLUMN, DECLARED, DECLARED_MARK = "lipschitz_bound", "declared", "\u2020"
#: The paper's certified radii (l2, images in [0, 1]).
DEFAULT_CERTIFIED_EPS: tuple[float, ...] = (36 / 255, 72 / 255, 108 / 255)


@dataclass(frozen=True)
class CertifiedOptions:
    eps: tuple[float, ...] = DEFAULT_CERTIFIED_EPS  # l2 radii of the certified scores


def from_declared_bound(rows: pd.DataFrame) -> bool:
    """Whether certified rows come from a bound the metric declares (not one the project proves)."""
    return BOUND_COLUMN in rows.columns and bool((rows[BOUND_COLUMN] == DECLARED).any())


_NOTE_HEAD, _NOTE_TAIL = (
    f"({DECLARED_MARK}) bound declared by ",
    ", not verified by the project; run an attack or --verify",
)


def declared_bound_note(metric_name: str) -> str:
    """The footer line explaining the mark of certified cells from a declared bound (records keep it in their notes)."""
    return f"{_NOTE_HEAD}{metric_name}{_NOTE_TAIL}"


def declared_bound_metrics(notes: list[str]) -> set[str]:
    """The metrics whose certified cells a table must mark: those named by :func:`declared_bound_note` lines."""
    found = set()
    for line in notes:
        head, tail = line.find(_NOTE_HEAD), line.rfind(_NOTE_TAIL)
        if 0 <= head < tail:
            found.add(line[head + len(_NOTE_HEAD) : tail])
    return found


@register_evaluation
class Certified(Evaluation):
    """Certified agreement at each eps: natural agreement inside the radius, the worst case outside."""

    name = "certified"
    kind = Kind.CERTIFICATE
    table_rank = 0  # a proof: first among the certificates
    Options = CertifiedOptions
    description = "certified 2AFC score from the metric's Lipschitz bound (l2)"

    @classmethod
    def applies_to(cls, spec: MetricSpec) -> bool | None:
        return spec.certifiable()

    def applies(self, metric: PerceptualMetric) -> bool:
        return declares_bound(metric)

    def run(self, metric: PerceptualMetric, batches: Iterable[EmbeddedBatch], ctx: Context) -> pd.DataFrame:
        if not declares_bound(metric):
            raise BenchError(f"metric {ctx.metric_name!r} has no Lipschitz bound, so it cannot be certified")
        declared = not bound_proven_by_project(metric)
        parts = []
        for item in batches:
            lipschitz = checked_bound(metric, item, ctx.metric_name)  # includes any resize in embed
            radius = certified_radius(metric.distance_kind, item.e_ref, item.e0, item.e1, lipschitz, ctx.perturb)
            extra = {"radius": radius, "ref_norm": item.e_ref.flatten(1).double().norm(dim=1)}
            if metric.distance_kind == "cosine" and ctx.perturb == "ref":  # the paper's formula is for the reference
                extra["radius_paper"] = paper_radius(item.d0, item.d1, item.e0, item.e1, lipschitz)
            agreement = natural_agreement(item)
            for eps in self.options.eps:
                parts.append(
                    item.rows(self.name, "l2", eps, certified_agreement(agreement, item.p, radius, eps), **extra)
                )
        rows = pd.concat(parts, ignore_index=True) if parts else empty_rows()
        return rows.assign(**{BOUND_COLUMN: DECLARED}) if declared and parts else rows

    def score(self, rows: pd.DataFrame, split: str) -> list[dict[str, Any]]:
        """Score rows; those from a declared bound say so (the tables mark their cells)."""
        scores = super().score(rows, split)
        return [{**row, BOUND_COLUMN: DECLARED} for row in scores] if from_declared_bound(rows) else scores

    def notes(self, metric_name: str, rows: pd.DataFrame) -> list[str]:
        """Whose bound certified the cells, and how the sound radii compare with the paper's formula."""
        declared = [declared_bound_note(metric_name)] if from_declared_bound(rows) else []
        if "radius_paper" not in rows.columns or rows["radius_paper"].isna().all():
            return declared
        part = rows[rows["radius_paper"].notna()].drop_duplicates("id")
        exceeds = int((part["radius_paper"] > part["radius"] * (1 + 1e-9)).sum())
        return declared + [
            f"{metric_name}: median sound radius {part['radius'].median():.3f}, median ||e(x_ref)|| {part['ref_norm'].median():.3f}; "
            f"the paper's formula exceeds the sound radius on {exceeds}/{len(part)} triplets (it is unsound when ||e(x_ref)|| < 1)"
        ]
