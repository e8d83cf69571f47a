"""``certified``: certified 2AFC scores from sound radii, for metrics with a proven Lipschitz bound.

Radii come from :mod:`lipsim_bench.evaluations.radii` (exact margin in embedding space over L); the
paper's formula is computed beside them for comparison (it is unsound when ||e(x_ref)|| < 1), and
the table notes how often it exceeds the sound radius.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import Context, EmbeddedBatch, Evaluation, Kind, empty_rows, natural_agreement
from lipsim_bench.evaluations.radii import certified_agreement, certified_radius, lipschitz_bound, paper_radius
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.metrics import MetricSpec, PerceptualMetric

#: The paper's certified radii (l2, images in [0, 1]).
DEFAULT_CERTIFIED_EPS: tuple[float, ...] = (36 / 255, 72 / 255, 108 / 255)


@dataclass(frozen=True)
class CertifiedOptions:
    eps: tuple[float, ...] = DEFAULT_CERTIFIED_EPS  # l2 radii of the certified scores


@register_evaluation
class Certified(Evaluation):
    """Certified agreement at each eps: natural agreement inside the radius, the worst case outside."""

    name = "certified"
    kind = Kind.CERTIFICATE
    Options = CertifiedOptions
    description = "certified 2AFC score from the metric's Lipschitz bound (l2)"

    @classmethod
    def applies_to(cls, spec: MetricSpec) -> bool | None:
        return spec.certifiable()

    def applies(self, metric: PerceptualMetric) -> bool:
        return metric.lipschitz is not None

    def run(self, metric: PerceptualMetric, batches: Iterable[EmbeddedBatch], ctx: Context) -> pd.DataFrame:
        if metric.lipschitz is None:
            raise BenchError(f"metric {ctx.metric_name!r} has no Lipschitz bound, so it cannot be certified")
        parts = []
        for item in batches:
            lipschitz = lipschitz_bound(metric, *item.batch["ref"].shape[-2:], ctx.metric_name)  # includes any resize in embed
            radius = certified_radius(metric.distance_kind, item.e_ref, item.e0, item.e1, lipschitz)
            extra = {"radius": radius, "ref_norm": item.e_ref.flatten(1).double().norm(dim=1)}
            if metric.distance_kind == "cosine":
                extra["radius_paper"] = paper_radius(item.d0, item.d1, item.e0, item.e1, lipschitz)
            agreement = natural_agreement(item)
            for eps in self.options.eps:
                parts.append(item.rows(self.name, "l2", eps, certified_agreement(agreement, item.p, radius, eps), **extra))
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()

    def notes(self, metric_name: str, rows: pd.DataFrame) -> list[str]:
        """How the sound radii compare with the paper's formula."""
        if "radius_paper" not in rows.columns or rows["radius_paper"].isna().all():
            return []
        part = rows[rows["radius_paper"].notna()].drop_duplicates("id")
        exceeds = int((part["radius_paper"] > part["radius"] * (1 + 1e-9)).sum())
        return [
            f"{metric_name}: median sound radius {part['radius'].median():.3f}, median ||e(x_ref)|| {part['ref_norm'].median():.3f}; "
            f"the paper's formula exceeds the sound radius on {exceeds}/{len(part)} triplets (it is unsound when ||e(x_ref)|| < 1)"
        ]
