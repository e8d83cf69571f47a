"""``smoothing-attack``: empirical robust scores of the Gaussian-smoothed 2AFC decision, and a check of every
smoothing certificate against them.

Each triplet is first certified exactly as ``smoothing`` does (its own code, the same options and the same
noise: the certificate rows are identical). Every certified triplet (not abstaining) is then attacked at each
eps by l2 PGD with expectation over transformation on the smoothed soft decision
(:mod:`lipsim_bench.evaluations.smoothing_pgd`), and the smoothed decision at x + delta is judged with fresh noise
by Cohen's PREDICT (n samples, two-sided binomial test at level alpha). A triplet counts as *changed* only
when PREDICT confidently returns the other class; its agreement at eps is then the worse of the two
classes' (the attacker keeps delta = 0 when flipping would help people agree).

Why kind ``attack`` (not ``certificate``): the scores are empirical, upper bounds of the smoothed metric's
robust score, to be read against ``smoothing``'s certified lower bounds at the same radii (the table footer
prints both). Not per threat model: the radii are its own ``eps`` option (default: ``smoothing``'s), so the
two evaluations line up eps by eps. Changed triplets carry to larger radii (nested balls), as APGD's flips do.

The certificate check: a triplet certified at radius R and confidently changed by a delta with
||delta|| < R is a violation. CERTIFY errs with probability <= alpha per triplet and each PREDICT with
probability <= alpha, so per triplet a violation has probability <= alpha (1 + len(eps)) even for a sound
certifier; more violations than Binomial(certified, that rate) gives with probability 1e-6 fail the run.
Rows: ``radius``, ``prediction`` (the certified class), ``adv_prediction`` (PREDICT at x + delta; -1:
abstain), ``delta_norm``, ``changed``, ``carried``, ``violated``; ``d0``, ``d1`` are the smoothed
distances at x + delta. The flag is not called ``flipped``: these flips are the smoothed decision's, and
say nothing about the metric's own certificate (the radius scatter must not read them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import Context, EmbeddedBatch, Evaluation, Kind, PassCost, empty_rows
from lipsim_bench.evaluations.grad_health import GradHealth, grad_notes
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.evaluations.smoothing import (
    FALLBACK_SMOOTHING_EPS,
    Smoothing,
    SmoothingOptions,
    check_options,
    decision_counts,
    default_smoothing_eps,
)
from lipsim_bench.evaluations.smoothing_noise import triplet_seed
from lipsim_bench.evaluations.smoothing_pgd import SmoothedPGD
from lipsim_bench.evaluations.smoothing_stats import ABSTAIN, allowed_violations, predict_counts
from lipsim_bench.evaluations.twoafc import TwoAFCClassifier
from lipsim_bench.metrics import PerceptualMetric

if TYPE_CHECKING:
    from lipsim_bench.attacks.base import ThreatModel

#: Probability that a sound certifier fails the check anyway (a false alarm), per unit.
FALSE_ALARM = 1e-6
BOOLEAN_COLUMNS = ("changed", "carried", "violated", "attacked", "abstain")


@dataclass(frozen=True)
class SmoothingAttackOptions:
    sigma: float = 0.25  # noise standard deviation (the certificate's and the attack's)
    n0: int = 100  # selection samples of the certificate
    n: int = 1000  # estimation samples of the certificate, and PREDICT's samples at x + delta
    alpha: float = 0.001  # level of the certificate and of PREDICT's test
    noise_batch: int = 200  # noisy references per forward pass
    m: int = 16  # EOT noise samples per attack step
    steps: int = 20  # PGD steps per radius
    step_size: float | None = None  # default 2.5 eps / steps
    eps: tuple[float, ...] = FALLBACK_SMOOTHING_EPS  # l2 radii attacked (default: smoothing's)

    def __post_init__(self) -> None:
        step_ok = self.step_size is None or (math.isfinite(self.step_size) and self.step_size > 0)
        check_options(
            "smoothing-attack",
            self,
            [
                ("sigma", self.sigma > 0),
                ("n0", self.n0 >= 1),
                ("n", self.n >= 1),
                ("alpha", 0 < self.alpha < 1),
                ("noise_batch", self.noise_batch >= 1),
                ("m", self.m >= 1),
                ("steps", 1 <= self.steps <= 100_000),
                ("step_size", step_ok),
                ("eps", all(math.isfinite(e) and e > 0 for e in self.eps)),
            ],
        )

    def certificate(self) -> SmoothingOptions:
        """The options of the ``smoothing`` certificate this attack checks."""
        return SmoothingOptions(
            sigma=self.sigma, n0=self.n0, n=self.n, alpha=self.alpha, noise_batch=self.noise_batch, eps=self.eps
        )


@dataclass
class Tally:
    """Certified triplets and violations over a unit, for the check at its end."""

    certified: int = 0
    violations: int = 0
    first: list[str] = field(default_factory=list)


@register_evaluation
class SmoothingAttack(Evaluation):
    """PGD-EOT on the smoothed decision at each eps, judged by PREDICT; checks every smoothing certificate."""

    name = "smoothing-attack"
    perturb_targets = ("ref",)  # smooths the reference only: --perturb x0/x1/all is refused (bench/run/spec.py)
    kind = Kind.ATTACK
    Options = SmoothingAttackOptions
    sweeps = ("sigma",)
    description = "empirical 2AFC score of the smoothed decision under PGD-EOT (PREDICT at x + delta), checking smoothing's radii (l2)"

    @classmethod
    def default_options(cls, dataset: str, seed: int) -> dict[str, Any]:
        return {"eps": default_smoothing_eps(dataset)}

    def flops(self, cost: PassCost, n_triplets: int, threat: ThreatModel | None, attacked: float = 1.0) -> float:
        o = self.options
        per_eps = o.steps * o.m * cost.forward_backward + o.n * cost.forward
        return n_triplets * ((2 + o.n0 + o.n) * cost.forward + len(o.eps) * per_eps)

    def label(self, threat: ThreatModel | None) -> str:
        o = self.options
        return f"{self.name} sigma {o.sigma:g} n {o.n} m {o.m} steps {o.steps}"

    def run(self, metric: PerceptualMetric, batches: Iterable[EmbeddedBatch], ctx: Context) -> pd.DataFrame:
        tally = Tally()
        parts = [self.attack_batch(metric, item, ctx, tally) for item in batches]
        check_violations(ctx.metric_name, tally, violation_rate(self.options))
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()

    def attack_batch(self, metric: PerceptualMetric, item: EmbeddedBatch, ctx: Context, tally: Tally) -> pd.DataFrame:
        """Certify the batch as ``smoothing`` does, then attack its certified triplets at each eps, smallest first."""
        o = self.options
        cert = Smoothing(o.certificate()).certify_batch(metric, item, ctx)
        prediction, radius = cert["prediction"], cert["radius"].double()
        clean = class_agreement(prediction, item.p)
        certified = prediction != ABSTAIN
        state = {
            "adv_prediction": prediction.clone(),
            "d0": cert["d0"].double().clone(),
            "d1": cert["d1"].double().clone(),
            "delta_norm": torch.zeros(len(prediction), dtype=torch.float64),
        }
        changed, violated = torch.zeros_like(certified), torch.zeros_like(certified)
        e0, e1 = item.e0.to(ctx.device), item.e1.to(ctx.device)
        parts = []
        for eps in sorted(set(o.eps)):
            carried = changed.clone()
            health = GradHealth(len(prediction))  # the input gradients PGD-EOT takes at this eps, per triplet
            classifier = TwoAFCClassifier(metric, e0, e1, ctx.metric_name, health)
            todo = (certified & ~changed).nonzero().flatten()
            if todo.numel():
                moved, norms = self.attack_and_predict(
                    metric, classifier, item, ctx, todo, prediction, float(eps), state
                )
                changed[todo] = moved
                violated[todo] |= moved & (radius[todo] > norms * (1 + 1e-6) + 1e-9)
            agreement = torch.where(changed, torch.minimum(clean, class_agreement(1 - prediction, item.p)), clean)
            rows = item.rows(
                self.column,
                "l2",
                float(eps),
                agreement,
                d0=state["d0"],
                d1=state["d1"],
                radius=radius,
                prediction=prediction,
                adv_prediction=state["adv_prediction"],
                delta_norm=state["delta_norm"],
                changed=changed,
                carried=carried,
                violated=violated,
                attacked=certified & ~carried,
                abstain=~certified,
                p_lower=cert["p_lower"],
            )
            parts.append(typed(rows.assign(**health.columns())))
        tally.certified += int(certified.sum())
        tally.violations += int(violated.sum())
        tally.first += [
            f"triplet {item.batch['id'][i]} (radius {float(radius[i]):.4g}, ||delta|| {float(state['delta_norm'][i]):.4g})"
            for i in violated.nonzero().flatten().tolist()
        ]
        return pd.concat(parts, ignore_index=True)

    def attack_and_predict(
        self,
        metric: PerceptualMetric,
        classifier: TwoAFCClassifier,
        item: EmbeddedBatch,
        ctx: Context,
        todo: Tensor,
        prediction: Tensor,
        eps: float,
        state: dict[str, Tensor],
    ) -> tuple[Tensor, Tensor]:
        """PGD-EOT on triplets ``todo``, PREDICT at x + delta with fresh noise; updates ``state`` and returns
        (confidently changed, ||delta||) of those triplets."""
        o = self.options
        ids = [item.batch["id"][i] for i in todo.tolist()]
        ref = item.batch["ref"][todo].to(ctx.device)
        attack = SmoothedPGD(eps, o.sigma, o.m, o.steps, o.step_size, o.noise_batch)
        seeds = [triplet_seed(ctx.seed, t, f"attack {eps!r}") for t in ids]
        x_adv = attack(classifier.restrict(todo.to(ctx.device)), ref, prediction[todo].to(ctx.device), seeds)
        counts = np.stack(
            [
                decision_counts(
                    metric,
                    ctx.metric_name,
                    x_adv[j],
                    classifier.e0[i : i + 1],
                    classifier.e1[i : i + 1],
                    o.n,
                    o.sigma,
                    triplet_seed(ctx.seed, t, f"predict {eps!r}"),
                    o.noise_batch,
                )
                for j, (i, t) in enumerate(zip(todo.tolist(), ids))
            ]
        )
        new = torch.from_numpy(predict_counts(counts, o.alpha))
        norms = (x_adv - ref).flatten(1).double().norm(dim=1).cpu()
        state["adv_prediction"][todo] = new
        state["d0"][todo], state["d1"][todo] = (torch.from_numpy(1.0 - counts[:, k] / o.n) for k in (0, 1))
        state["delta_norm"][todo] = norms
        return (new != ABSTAIN) & (new != prediction[todo]), norms

    def notes(self, metric_name: str, rows: pd.DataFrame) -> list[str]:
        """Empirical against certified smoothed scores at each eps, and the check's counts."""
        if not len(rows):
            return []
        o = self.options
        compared = "; ".join(
            f"eps {eps:.3g}: {empirical:.1f} vs {certified:.1f}" for eps, empirical, certified in score_pairs(rows)
        )
        part = rows.drop_duplicates("id")
        certified = int((~part["abstain"].astype(bool)).sum())
        allowed = allowed_violations(certified, violation_rate(o), FALSE_ALARM)
        changed = int(rows.loc[rows["eps"] == rows["eps"].max(), "changed"].astype(bool).sum())
        return grad_notes(metric_name, self.column, rows, flipped="changed") + [
            f"{metric_name}: smoothing-attack (sigma {o.sigma:g}; PGD-EOT, m {o.m}, {o.steps} steps; PREDICT, n {o.n}, alpha {o.alpha:g}) empirical vs "
            f"certified smoothed score: {compared}; {changed}/{certified} certified triplets changed, "
            f"{int(part['violated'].astype(bool).sum())} inside their radius ({allowed} allowed)"
        ]


def class_agreement(prediction: Tensor, p: Tensor) -> Tensor:
    """Agreement of a decision for x1 (1) or x0 (0); the worst case min(p, 1 - p) for anything else (abstain)."""
    p = p.double()
    return torch.where(prediction == 1, p, torch.where(prediction == 0, 1.0 - p, torch.minimum(p, 1.0 - p)))


def typed(rows: pd.DataFrame) -> pd.DataFrame:
    """rows() writes doubles: flags back to booleans, classes to integers, and the smoothed marker."""
    for column in BOOLEAN_COLUMNS:
        rows[column] = rows[column].astype(bool)
    for column in ("prediction", "adv_prediction"):
        rows[column] = rows[column].astype(np.int64)
    rows["smoothed"] = True
    return rows


def score_pairs(rows: pd.DataFrame) -> list[tuple[float, float, float]]:
    """(eps, empirical score, certified score) in percent, the certified one recomputed as ``smoothing`` scores it."""
    pairs = []
    for eps, part in rows.groupby("eps", sort=True):
        p = torch.tensor(part["p"].to_numpy())
        clean = class_agreement(torch.tensor(part["prediction"].to_numpy()), p)
        certified = torch.where(torch.tensor(part["radius"].to_numpy()) > float(eps), clean, torch.minimum(p, 1.0 - p))
        pairs.append((float(eps), 100.0 * float(part["agreement"].mean()), 100.0 * float(certified.mean())))
    return pairs


def violation_rate(options: SmoothingAttackOptions) -> float:
    """Per certified triplet, the chance of a violation under a sound certifier: CERTIFY's alpha and one per PREDICT test."""
    return options.alpha * (1 + len(set(options.eps)))


def check_violations(metric_name: str, tally: Tally, rate: float) -> None:
    """Fail the run when more certificates were broken than a sound certifier's error rate explains."""
    allowed = allowed_violations(tally.certified, rate, FALSE_ALARM)
    if tally.violations > allowed:
        raise BenchError(
            f"smoothing certificate violated: on metric {metric_name!r} {tally.violations} of {tally.certified} certified triplets were "
            f"confidently flipped inside their certified radius (first: {tally.first[0]}), more than the {allowed} that alpha allows; "
            "the smoothing certifier is broken"
        )
