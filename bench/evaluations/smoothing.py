"""``smoothing``: certified 2AFC scores of the Gaussian-smoothed decision, for every metric (Cohen et al. 2019).

The base decision is a binary classifier of the reference alone, h(x) = [d(x, x1) < d(x, x0)]
(class 1: the metric picks x1), so CERTIFY applies to any metric, with no Lipschitz bound:
n0 noisy references pick the class c_A, n fresh ones count how often h gives c_A, and the one-sided
Clopper-Pearson bound p_lower (level alpha) gives the radius sigma * Phi^-1(p_lower), or an
abstention when p_lower <= 1/2. x0 and x1 stay fixed (their clean embeddings are reused); the
noise goes on the [0, 1] reference before the metric's own resize and normalisation, unclamped.

Choices:

* A tie d(x, x1) == d(x, x0) under noise counts for neither class (a third outcome): it only lowers
  n_A, so the certificate stays sound. On a tie of the selection counts c_A is x0 (argmax's first).
* Rows at eps 0 are the smoothed metric's own natural score: the smoothed decision's agreement
  with people, an abstention counting as the worst case min(p, 1 - p) (Cohen's "certified accuracy
  at radius 0"). At eps > 0 the smoothed agreement counts where radius > eps, the worst case elsewhere.
* Noise: common random numbers (:mod:`lipsim_bench.evaluations.smoothing_noise`), so the numbers do not
  depend on the batch size and every metric sees the same noise on the same triplet.
* Rows: ``radius``, ``p_lower``, ``n_a``, ``prediction`` (1: x1, 0: x0, -1: abstain), ``abstain``;
  ``d0``, ``d1`` are the smoothed metric's distances 1 - P_hat[h picks x_i] (the metric's own are in
  the natural rows), so d0, d1, p and radius give a row's agreement at any radius, as for
  ``certified``. ``smoothed`` marks radii of the smoothed decision: attacks on the metric itself
  say nothing about them (the plot's radius scatter leaves them out).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import Context, EmbeddedBatch, Evaluation, Kind, PassCost, checked_call, empty_rows
from lipsim_bench.evaluations.certified import DEFAULT_CERTIFIED_EPS
from lipsim_bench.evaluations.radii import certified_agreement
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.evaluations.smoothing_noise import noisy_copies, triplet_seed
from lipsim_bench.evaluations.smoothing_stats import ABSTAIN, certify_counts, max_radius, select_class
from lipsim_bench.metrics import PerceptualMetric

if TYPE_CHECKING:
    from lipsim_bench.attacks.base import ThreatModel

#: Reported radii: the certified evaluation's (to compare with Lipschitz certificates) and the dataset's
#: attack radii up to 0.5 (to compare with APGD). The defaults (sigma 0.25, n 1000, alpha 0.001) cannot
#: certify beyond 2.46 sigma = 0.62; even n = 100,000 stops at 3.81 sigma = 0.95.
SMOOTHING_ATTACK_EPS_MAX = 0.5
FALLBACK_SMOOTHING_EPS: tuple[float, ...] = DEFAULT_CERTIFIED_EPS + (0.5,)


def default_smoothing_eps(dataset: str) -> tuple[float, ...]:
    """The certified radii and the dataset's l2 attack radii up to 0.5 (sample: 0.25, 0.5; NIGHT: 0.5).

    Imported here, not at the top: the radii enter the unit key as option values, so the datasets' code must not
    enter the evaluation's code fingerprint (an edit of a dataset module would recompute every smoothing record)."""
    from lipsim_bench.datasets import dataset_attack_eps

    attack = [e for e in dataset_attack_eps(dataset, "l2") if e <= SMOOTHING_ATTACK_EPS_MAX]
    return DEFAULT_CERTIFIED_EPS + tuple(attack)


@dataclass(frozen=True)
class SmoothingOptions:
    sigma: float = 0.25  # noise standard deviation, per pixel of the [0, 1] image
    n0: int = 100  # selection samples
    n: int = 1000  # estimation samples (the paper's 100,000: --set smoothing.n=100000)
    alpha: float = 0.001  # failure probability of each certificate
    noise_batch: int = 200  # noisy references per forward pass
    eps: tuple[float, ...] = (
        FALLBACK_SMOOTHING_EPS  # l2 radii of the scores (eps 0, the smoothed natural score, is always there)
    )

    def __post_init__(self) -> None:
        check_options(
            "smoothing",
            self,
            [
                ("sigma", self.sigma > 0),
                ("n0", self.n0 >= 1),
                ("n", self.n >= 1),
                ("alpha", 0 < self.alpha < 1),
                ("noise_batch", self.noise_batch >= 1),
            ],
        )


#: What each option must be, for the one-line error.
OPTION_FIXES = {
    "sigma": "a positive number, e.g. 0.25",
    "n0": "a positive integer, e.g. 100",
    "n": "a positive integer, e.g. 1000",
    "alpha": "a probability strictly between 0 and 1, e.g. 0.001",
    "noise_batch": "a positive integer, e.g. 200",
    "m": "a positive integer, e.g. 16",
    "steps": "an integer from 1 to 100000, e.g. 20",
    "step_size": "a positive number, or none for 2.5 eps / steps",
    "eps": "positive l2 radii, e.g. 0.25,0.5",
}


def check_options(evaluation: str, options: object, checks: list[tuple[str, bool]]) -> None:
    """The first failed check as one line naming the option and the fix."""
    for option, ok in checks:
        if not ok:
            raise BenchError(
                f"{evaluation}.{option}={getattr(options, option)!r} is invalid; give {OPTION_FIXES[option]} "
                f"(--set {evaluation}.{option}=...)"
            )


@register_evaluation
class Smoothing(Evaluation):
    """Cohen et al.'s CERTIFY on each triplet's 2AFC decision; scores at eps 0 (smoothed natural) and each eps."""

    name = "smoothing"
    perturb_targets = ("ref",)  # smooths the reference only: --perturb x0/x1/all is refused (bench/run/spec.py)
    kind = Kind.CERTIFICATE
    Options = SmoothingOptions
    sweeps = ("sigma",)
    description = "certified 2AFC score of the Gaussian-smoothed decision (Cohen et al. CERTIFY, any metric, l2)"

    @classmethod
    def default_options(cls, dataset: str, seed: int) -> dict[str, Any]:
        return {"eps": default_smoothing_eps(dataset)}

    def flops(self, cost: PassCost, n_triplets: int, threat: ThreatModel | None, attacked: float = 1.0) -> float:
        # x0 and x1 once, then n0 + n noisy references
        return n_triplets * (2 + self.options.n0 + self.options.n) * cost.forward

    def label(self, threat: ThreatModel | None) -> str:
        return f"{self.name} sigma {self.options.sigma:g} n {self.options.n}"

    def run(self, metric: PerceptualMetric, batches: Iterable[EmbeddedBatch], ctx: Context) -> pd.DataFrame:
        parts = [
            smoothed_rows(item, self.column, smoothing_radii(self.options.eps), **self.certify_batch(metric, item, ctx))
            for item in batches
        ]
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()

    def certify_batch(self, metric: PerceptualMetric, item: EmbeddedBatch, ctx: Context) -> dict[str, Tensor]:
        """prediction, radius, p_lower, n_A and the smoothed distances d0, d1 of each triplet of the batch."""
        o = self.options
        guesses, estimates = [], []
        for i, triplet_id in enumerate(item.batch["id"]):
            ref = item.batch["ref"][i].to(ctx.device)
            e0, e1 = item.e0[i : i + 1].to(ctx.device), item.e1[i : i + 1].to(ctx.device)
            select = decision_counts(
                metric,
                ctx.metric_name,
                ref,
                e0,
                e1,
                o.n0,
                o.sigma,
                triplet_seed(ctx.seed, triplet_id, "select"),
                o.noise_batch,
            )
            guesses.append(int(select_class(select[None])[0]))
            estimates.append(
                decision_counts(
                    metric,
                    ctx.metric_name,
                    ref,
                    e0,
                    e1,
                    o.n,
                    o.sigma,
                    triplet_seed(ctx.seed, triplet_id, "estimate"),
                    o.noise_batch,
                )
            )
        counts = np.array(estimates).reshape(-1, 2)
        n_a = counts[np.arange(len(guesses)), guesses]
        cert = certify_counts(np.array(guesses), n_a, o.n, o.sigma, o.alpha)
        smoothed = torch.from_numpy(
            1.0 - counts / o.n
        )  # 1 - P_hat[the metric picks x_i]: the smoothed decision picks the smaller
        return {
            "prediction": torch.from_numpy(cert.prediction),
            "radius": torch.from_numpy(cert.radius),
            "d0": smoothed[:, 0],
            "d1": smoothed[:, 1],
            "p_lower": torch.from_numpy(cert.p_lower),
            "n_a": torch.from_numpy(n_a),
        }

    def notes(self, metric_name: str, rows: pd.DataFrame) -> list[str]:
        """The abstention rate and the settings that bound every radius."""
        o = self.options
        return [
            f"{metric_name}: smoothing (sigma {o.sigma:g}, n0 {o.n0}, n {o.n}, alpha {o.alpha:g}) {abstentions(rows)}; "
            f"no radius above {max_radius(o.n, o.sigma, o.alpha):.3f} can be certified with these settings"
        ]


def smoothing_radii(eps: tuple[float, ...]) -> tuple[float, ...]:
    """eps 0 (the smoothed natural score) and the options' radii."""
    return (0.0,) + tuple(e for e in eps if e != 0)


def abstentions(rows: pd.DataFrame) -> str:
    """How often a smoothed decision abstained, and what eps 0 means, for the table's footer."""
    part = rows.drop_duplicates("id")
    count = int(part["abstain"].sum())
    return (
        f"abstains on {count}/{len(part)} triplets ({100 * count / max(len(part), 1):.1f}%); eps 0 is the smoothed metric's "
        "natural score (abstentions count as the worst case)"
    )


def smoothed_rows(
    item: EmbeddedBatch,
    name: str,
    radii: tuple[float, ...],
    prediction: Tensor,
    radius: Tensor,
    d0: Tensor,
    d1: Tensor,
    **extra: Tensor,
) -> pd.DataFrame:
    """Rows per radius: the smoothed decision's agreement where it is certified beyond eps, the worst case elsewhere.

    ``prediction`` is 1 (x1), 0 (x0) or ABSTAIN (radius 0: the worst case at every eps, 0 included). ``d0``, ``d1``
    are the smoothed metric's distances, whose decision is ``prediction`` wherever it does not abstain (so the
    rows' own d0, d1, p and radius give their agreement at any radius, as for ``certified``). Rows are marked
    ``smoothed``: their radius certifies the smoothed decision, not the metric's own.
    """
    p = item.p.double()
    agreement = torch.where(prediction == 1, p, torch.where(prediction == 0, 1.0 - p, torch.minimum(p, 1.0 - p)))
    parts = []
    for eps in radii:
        rows = item.rows(
            name,
            "l2",
            eps,
            certified_agreement(agreement, item.p, radius, eps),
            d0=d0,
            d1=d1,
            radius=radius,
            prediction=prediction,
            **extra,
        )
        for column, values in {"prediction": prediction, **extra}.items():
            if not values.is_floating_point():  # rows() writes doubles; counts and classes stay integers
                rows[column] = rows[column].astype(np.int64)
        rows["abstain"] = rows["prediction"] == ABSTAIN
        rows["smoothed"] = True
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def decision_counts(
    metric: PerceptualMetric,
    metric_name: str,
    ref: Tensor,
    e0: Tensor,
    e1: Tensor,
    count: int,
    sigma: float,
    seed: int,
    batch: int,
) -> np.ndarray:
    """How often the metric picks x0 and x1 (``[c0, c1]``; ties count for neither) on ``count`` noisy references."""
    counts = np.zeros(2, dtype=np.int64)
    with torch.no_grad():
        for x in noisy_copies(ref, count, sigma, seed, batch):
            size = len(x)
            e = checked_call(metric_name, "embed", lambda: metric.embed(x), size)
            d0 = checked_call(metric_name, "distance", lambda: metric.distance(e, e0.expand(size, *e0.shape[1:])), size)
            d1 = checked_call(metric_name, "distance", lambda: metric.distance(e, e1.expand(size, *e1.shape[1:])), size)
            counts[0] += int((d0 < d1).sum())
            counts[1] += int((d1 < d0).sum())
    return counts
