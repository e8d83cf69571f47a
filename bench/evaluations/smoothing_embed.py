"""``smoothing-embed``: certified 2AFC scores of a smoothed embedding (the Lipschitz route), cosine metrics.

u(x) = embed(x) / ||embed(x)|| lies in the unit ball, so its Gaussian mean u_bar(x) = E[u(x + e)] is
sqrt(2/pi)/sigma-Lipschitz in l2 whatever the network, with no bound on the metric itself. The
smoothed metric compares u_bar(x_ref) with the clean unit embeddings n0, n1 of x0 and x1 (only the
reference is perturbed, so x0 and x1 are not smoothed: exact, and a third of the cost), by the
distances 1 - <u_bar, n_i>; it picks x1 iff <u_bar, a> < 0 with a = n0 - n1, a linear decision of
u_bar. The margin m = <u_bar, a> / ||a|| is estimated from n noisy references and is within a
two-sided Hoeffding slack of its mean with probability 1 - alpha; the radius is (|m_hat| - slack) / (sqrt(2/pi) / sigma), an abstention when
|m_hat| <= slack. (For this fixed direction a the scalar bound is tighter than the vector one,
(1 + sqrt(2 ln(1/alpha))) / sqrt(n), that bounds ||u_hat - u_bar|| in every direction at once.)

Rows, eps 0 and noise are those of ``smoothing`` (same generator phase as its estimation samples,
so both see the same noise). Only for cosine metrics: the l2 decision is not a function of u.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import Context, EmbeddedBatch, Evaluation, Kind, PassCost, checked_call, empty_rows
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.evaluations.smoothing import (
    FALLBACK_SMOOTHING_EPS,
    abstentions,
    check_options,
    default_smoothing_eps,
    smoothed_rows,
    smoothing_radii,
)
from lipsim_bench.evaluations.smoothing_noise import noisy_copies, triplet_seed
from lipsim_bench.evaluations.smoothing_stats import hoeffding_slack, margin_certificate, smoothed_lipschitz
from lipsim_bench.metrics import MetricSpec, PerceptualMetric

if TYPE_CHECKING:
    from lipsim_bench.attacks.base import ThreatModel


@dataclass(frozen=True)
class SmoothingEmbedOptions:
    sigma: float = 0.25  # noise standard deviation, per pixel of the [0, 1] image
    n: int = 1000  # noisy references per triplet
    alpha: float = 0.001  # failure probability of each certificate
    noise_batch: int = 200  # noisy references per forward pass
    eps: tuple[float, ...] = FALLBACK_SMOOTHING_EPS  # l2 radii of the scores (eps 0 is always there)

    def __post_init__(self) -> None:
        check_options(
            "smoothing-embed",
            self,
            [
                ("sigma", self.sigma > 0),
                ("n", self.n >= 1),
                ("alpha", 0 < self.alpha < 1),
                ("noise_batch", self.noise_batch >= 1),
            ],
        )


@register_evaluation
class SmoothingEmbed(Evaluation):
    """The smoothed unit embedding's 2AFC decision, certified by its Lipschitz constant sqrt(2/pi)/sigma."""

    name = "smoothing-embed"
    perturb_targets = ("ref",)  # smooths the reference only: --perturb x0/x1/all is refused (bench/run/spec.py)
    kind = Kind.CERTIFICATE
    Options = SmoothingEmbedOptions
    sweeps = ("sigma",)
    description = (
        "certified 2AFC score of the smoothed normalised embedding (Lipschitz sqrt(2/pi)/sigma; cosine metrics, l2)"
    )

    @classmethod
    def applies_to(cls, spec: MetricSpec) -> bool | None:
        return None  # the distance kind is known once the metric is built

    def applies(self, metric: PerceptualMetric) -> bool:
        return metric.distance_kind == "cosine"

    @classmethod
    def default_options(cls, dataset: str, seed: int) -> dict[str, Any]:
        return {"eps": default_smoothing_eps(dataset)}

    def flops(self, cost: PassCost, n_triplets: int, threat: ThreatModel | None, attacked: float = 1.0) -> float:
        return n_triplets * (2 + self.options.n) * cost.forward

    def label(self, threat: ThreatModel | None) -> str:
        return f"{self.name} sigma {self.options.sigma:g} n {self.options.n}"

    def run(self, metric: PerceptualMetric, batches: Iterable[EmbeddedBatch], ctx: Context) -> pd.DataFrame:
        if not self.applies(metric):
            raise BenchError(
                f"smoothing-embed needs a cosine-distance metric; {ctx.metric_name!r} uses {metric.distance_kind!r}"
            )
        o = self.options
        parts = []
        for item in batches:
            n0, n1 = unit(item.e0), unit(item.e1)
            u_hat = torch.cat([self.mean_unit_embedding(metric, item, i, ctx) for i in range(len(item.p))])
            a = n0 - n1
            norm_a = a.norm(dim=1)
            margin = torch.where(
                norm_a > 0, (u_hat * a).sum(dim=1) / norm_a.clamp_min(1e-300), torch.zeros_like(norm_a)
            )
            prediction, radius = margin_certificate(margin.numpy(), o.n, o.sigma, o.alpha)
            # the smoothed metric's distances 1 - <u_hat, n_i>: it picks x1 where margin < 0
            d0, d1 = 1.0 - (u_hat * n0).sum(dim=1), 1.0 - (u_hat * n1).sum(dim=1)
            parts.append(
                smoothed_rows(
                    item,
                    self.column,
                    smoothing_radii(o.eps),
                    torch.from_numpy(prediction),
                    torch.from_numpy(radius),
                    d0,
                    d1,
                    margin=margin,
                )
            )
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()

    def mean_unit_embedding(self, metric: PerceptualMetric, item: EmbeddedBatch, i: int, ctx: Context) -> Tensor:
        """u_hat = the mean of u(x + e) over n noisy copies of triplet ``i``'s reference, ``(1, D)`` float64 on the CPU."""
        o = self.options
        total: Tensor | None = None
        seed = triplet_seed(ctx.seed, item.batch["id"][i], "estimate")
        with torch.no_grad():
            for x in noisy_copies(item.batch["ref"][i].to(ctx.device), o.n, o.sigma, seed, o.noise_batch):
                part = unit(checked_call(ctx.metric_name, "embed", lambda: metric.embed(x), len(x))).sum(
                    dim=0, keepdim=True
                )
                total = part if total is None else total + part
        assert total is not None  # n >= 1
        return total.cpu() / o.n

    def notes(self, metric_name: str, rows: pd.DataFrame) -> list[str]:
        o = self.options
        largest = (1 - hoeffding_slack(o.n, o.alpha)) / smoothed_lipschitz(o.sigma)
        return [
            f"{metric_name}: smoothing-embed (sigma {o.sigma:g}, n {o.n}, alpha {o.alpha:g}) {abstentions(rows)}; "
            f"no radius above {max(largest, 0.0):.3f} can be certified with these settings"
        ]


def unit(e: Tensor) -> Tensor:
    """Flattened rows at unit l2 norm, in float64 (a zero row stays zero: still in the unit ball)."""
    return F.normalize(e.flatten(1).double(), dim=1)
