"""``recall-smoothing``: certified Recall@1 of the Gaussian-smoothed top-1 decision, for every metric (Cohen et al.
2019's CERTIFY, as ``smoothing`` does for 2AFC).

The base classifier is the top-1 gallery item of a query, f(x) = argmin_g d(x, gallery_g), one class per gallery
item; the smoothed one, g(x) = the item most often nearest under x + e, e ~ N(0, sigma^2 I). n0 noisy queries
pick the class c_A (the most often nearest item), n fresh ones count how often c_A is nearest, and the one-sided
Clopper-Pearson bound p_lower (level alpha) gives the l2 radius sigma * Phi^-1(p_lower) within which g stays
c_A, or an abstention when p_lower <= 1/2. The gallery stays fixed (its clean embeddings, computed once per
metric); the noise goes on the [0, 1] query before the metric's own resize and normalisation, unclamped.

Reused from ``smoothing`` (so both read alike and share one implementation of the statistics): the bound and
the radius (:func:`smoothing_stats.certify_counts`), the choice of c_A (:func:`smoothing_stats.select_class`:
the lower gallery index on ties), the noise (:func:`smoothing_noise.noisy_copies` with
:func:`smoothing_noise.triplet_seed` of the run's seed, the query's id and the phase: common random numbers, so
every metric and every sigma sees the same noise on the same query), the option checks and the radius limit.

Choices:

* A draw whose nearest distance is shared by several items counts for none of them (a further outcome): it only
  lowers n_A, so the certificate stays sound (as a 2AFC tie in ``smoothing``).
* Rows at eps 0 are the smoothed classifier's own Recall@1: its item is relevant, an abstention counting as a
  miss (the worst case: Recall@1 has no partial credit). At eps > 0 a query counts where the item is relevant
  and radius > eps. So the certified rows never exceed eps 0's.
* Rows: ``prediction`` (the gallery index of c_A, -1 where abstaining), ``radius``, ``p_lower``, ``n_a``,
  ``hit`` (c_A is relevant, whatever the radius), ``abstain``, ``smoothed`` (the radius is the smoothed
  decision's, not the metric's: attacks on the metric say nothing about it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lipsim_bench.evaluations.base import Context, Evaluation, Kind, PassCost, checked_call, empty_rows
from lipsim_bench.evaluations.certified import DEFAULT_CERTIFIED_EPS
from lipsim_bench.evaluations.gallery_batches import GalleryBatch, distance_matrix
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.evaluations.smoothing import check_options, smoothing_radii
from lipsim_bench.evaluations.smoothing_noise import noisy_copies, triplet_seed
from lipsim_bench.evaluations.smoothing_stats import ABSTAIN, Certificate, certify_counts, max_radius, select_class
from lipsim_bench.metrics import PerceptualMetric

if TYPE_CHECKING:
    from lipsim_bench.attacks.base import ThreatModel

#: Reported l2 radii: the certified evaluations' (LipSim's 36/255, 72/255, 108/255) and two of the bundled attack
#: radii. With the defaults (sigma 0.25, n 100, alpha 0.001) nothing beyond 1.50 sigma = 0.37 can be certified.
DEFAULT_RECALL_SMOOTHING_EPS: tuple[float, ...] = DEFAULT_CERTIFIED_EPS + (0.25, 0.5)


@dataclass(frozen=True)
class RecallSmoothingOptions:
    sigma: float = 0.25  # noise standard deviation, per pixel of the [0, 1] query
    n0: int = 10  # selection samples (pick the item)
    n: int = 100  # estimation samples (bound its probability; the paper's 100,000: --set recall-smoothing.n=...)
    alpha: float = 0.001  # failure probability of each certificate
    noise_batch: int = 100  # noisy queries per forward pass
    eps: tuple[float, ...] = DEFAULT_RECALL_SMOOTHING_EPS  # l2 radii of the scores (eps 0 is always there)

    def __post_init__(self) -> None:
        check_options(
            "recall-smoothing",
            self,
            [
                ("sigma", self.sigma > 0),
                ("n0", self.n0 >= 1),
                ("n", self.n >= 1),
                ("alpha", 0 < self.alpha < 1),
                ("noise_batch", self.noise_batch >= 1),
                ("eps", all(e >= 0 for e in self.eps)),
            ],
        )


@register_evaluation
class RecallSmoothing(Evaluation):
    """Cohen et al.'s CERTIFY on each query's top-1 gallery item; certified Recall@1 at eps 0 and each eps."""

    name = "recall-smoothing"
    tasks: ClassVar[tuple[str, ...]] = ("retrieval",)
    kind = Kind.CERTIFICATE
    Options = RecallSmoothingOptions
    sweeps = ("sigma",)
    description = "certified Recall@1 of the Gaussian-smoothed top-1 item (Cohen et al. CERTIFY, any metric, l2)"

    @classmethod
    def default_options(cls, dataset: str, seed: int) -> dict[str, Any]:
        return {"eps": DEFAULT_RECALL_SMOOTHING_EPS}

    def flops(self, cost: PassCost, n_triplets: int, threat: ThreatModel | None, attacked: float = 1.0) -> float:
        # the gallery is embedded once per metric by the task's batches; then n0 + n noisy queries each
        return n_triplets * (self.options.n0 + self.options.n) * cost.forward

    def label(self, threat: ThreatModel | None) -> str:
        return f"{self.name} sigma {self.options.sigma:g} n {self.options.n}"

    def run(self, metric: PerceptualMetric, batches: Iterable[GalleryBatch], ctx: Context) -> pd.DataFrame:
        on_device: dict[int, Tensor] = {}  # the gallery moved once, not per batch
        parts = []
        for item in batches:
            e_gallery = on_device.setdefault(id(item.gallery), item.gallery.embeddings.to(ctx.device))
            parts.append(self.batch_rows(item, *self.certify_batch(metric, item, e_gallery, ctx)))
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()

    def certify_batch(
        self, metric: PerceptualMetric, item: GalleryBatch, e_gallery: Tensor, ctx: Context
    ) -> tuple[Certificate, np.ndarray]:
        """CERTIFY for each query of the batch: the smoothed top-1 item (or ABSTAIN), p_lower and the radius; and
        n_A, how many estimation draws had that item nearest."""
        o = self.options
        guesses, n_a = [], []
        for i, query_id in enumerate(item.batch["id"]):
            query = item.batch["query"][i].to(ctx.device)
            select = top1_counts(
                metric, ctx.metric_name, query, e_gallery, o.n0, o.sigma, triplet_seed(ctx.seed, query_id, "select"), o.noise_batch
            )  # fmt: skip
            guess = int(select_class(select[None])[0])
            estimate = top1_counts(
                metric, ctx.metric_name, query, e_gallery, o.n, o.sigma, triplet_seed(ctx.seed, query_id, "estimate"), o.noise_batch
            )  # fmt: skip
            guesses.append(guess)
            n_a.append(int(estimate[guess]))
        counts = np.array(n_a, dtype=np.int64)
        return certify_counts(np.array(guesses, dtype=np.int64), counts, o.n, o.sigma, o.alpha), counts

    def batch_rows(self, item: GalleryBatch, cert: Certificate, n_a: np.ndarray) -> pd.DataFrame:
        """Rows per radius (eps 0, then the options'): relevant and certified beyond eps, else a miss."""
        prediction = torch.from_numpy(cert.prediction)
        radius = torch.from_numpy(cert.radius)
        hit = smoothed_hit(item.relevant, prediction)
        parts = []
        for eps in smoothing_radii(self.options.eps):
            rows = item.rows(
                self.column,
                "l2",
                eps,
                certified_hit(hit, radius, eps).double(),
                prediction=prediction,
                radius=radius,
                p_lower=torch.from_numpy(cert.p_lower),
            )
            rows["prediction"] = cert.prediction.astype(np.int64)  # rows() may write tensors as doubles
            rows["n_a"] = n_a
            rows["hit"] = hit.numpy()
            rows["abstain"] = rows["prediction"] == ABSTAIN
            rows["smoothed"] = True
            parts.append(rows)
        return pd.concat(parts, ignore_index=True)

    def notes(self, metric_name: str, rows: pd.DataFrame) -> list[str]:
        """The abstention rate and the settings that bound every radius."""
        o = self.options
        part = rows.drop_duplicates("id") if "id" in rows.columns else rows
        count = int(part["abstain"].sum()) if "abstain" in part.columns else 0
        share = 100 * count / max(len(part), 1)
        return [
            f"{metric_name}: recall-smoothing (sigma {o.sigma:g}, n0 {o.n0}, n {o.n}, alpha {o.alpha:g}) abstains on "
            f"{count}/{len(part)} queries ({share:.1f}%); eps 0 is the smoothed top-1's own Recall@1 (abstentions "
            f"count as misses); no radius above {max_radius(o.n, o.sigma, o.alpha):.3f} can be certified with these settings"
        ]


def smoothed_hit(relevant: Tensor, prediction: Tensor) -> Tensor:
    """(N,) bool: the smoothed top-1 item is relevant to its query (False where abstaining)."""
    chosen = prediction.clamp_min(0).long()
    hit = relevant.bool().gather(1, chosen[:, None])[:, 0]
    return hit & (prediction != ABSTAIN)


def certified_hit(hit: Tensor, radius: Tensor, eps: float) -> Tensor:
    """(N,) bool: a hit no l2 perturbation of the query within ``eps`` can change (radius > eps; eps 0: not abstained)."""
    return hit & (radius > eps)


def top1_counts(
    metric: PerceptualMetric,
    metric_name: str,
    query: Tensor,
    e_gallery: Tensor,
    count: int,
    sigma: float,
    seed: int,
    batch: int,
) -> np.ndarray:
    """How often each gallery item is the unique nearest to ``count`` noisy copies of ``query`` ``(G,)`` (a draw
    whose nearest distance is shared counts for none)."""
    size_g = len(e_gallery)
    counts = np.zeros(size_g, dtype=np.int64)
    with torch.no_grad():
        for x in noisy_copies(query, count, sigma, seed, batch):
            e = checked_call(metric_name, "embed", lambda: metric.embed(x), len(x))
            d = distance_matrix(metric, e, e_gallery, metric_name=metric_name)
            best = d.min(dim=1, keepdim=True).values
            unique = (d == best).sum(dim=1) == 1
            winners = d.argmin(dim=1)[unique].cpu()
            counts += np.bincount(winners.numpy(), minlength=size_g)
    return counts
