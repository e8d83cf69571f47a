"""The statistics of randomized smoothing, apart from any model (Cohen, Rosenfeld and Kolter, ICML 2019;
the Lipschitz route of smoothed embeddings at the end).

Kept apart from any model so the certificate's arithmetic can be checked against closed forms:
CERTIFY takes the class picked by the selection samples and the number of estimation samples that
agree with it, and returns a one-sided Clopper-Pearson lower bound on that class's probability and
the l2 radius sigma * Phi^-1(p_lower) on which the smoothed classifier is constant (with probability
at least 1 - alpha over the samples), or an abstention when the bound does not exceed 1/2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, binom, binomtest, norm

ABSTAIN = -1


def clopper_pearson_lower(successes: np.ndarray, trials: int, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion; 0 for no successes.

    The same number as statsmodels' ``proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]``,
    which the reference implementation calls.
    """
    k = np.asarray(successes, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(alpha, np.maximum(k, 1.0), trials - k + 1.0)
    return np.where(k > 0, bound, 0.0)


@dataclass(frozen=True)
class Certificate:
    """Per-triplet outcome of CERTIFY: the class (or ABSTAIN), the lower bound and the radius."""

    prediction: np.ndarray  # int: the certified class, or ABSTAIN
    p_lower: np.ndarray
    radius: np.ndarray  # 0 where abstaining

    @property
    def abstain(self) -> np.ndarray:
        return self.prediction == ABSTAIN


def select_class(selection_counts: np.ndarray) -> np.ndarray:
    """The guess c_A from the selection samples' counts ``(N, classes)``: argmax, the lower class on ties."""
    return np.asarray(selection_counts).argmax(axis=1)


def certify_counts(guess: np.ndarray, guess_count: np.ndarray, n: int, sigma: float, alpha: float) -> Certificate:
    """CERTIFY from the guessed class and how many of the ``n`` estimation samples fell in it.

    Abstains when p_lower <= 1/2 (a bound of exactly 1/2 gives radius 0, nothing to certify).
    """
    p_lower = clopper_pearson_lower(guess_count, n, alpha)
    abstain = p_lower <= 0.5
    radius = np.where(abstain, 0.0, sigma * norm.ppf(np.where(abstain, 0.75, p_lower)))
    prediction = np.where(abstain, ABSTAIN, np.asarray(guess, dtype=np.int64))
    return Certificate(prediction.astype(np.int64), p_lower, radius)


def max_radius(n: int, sigma: float, alpha: float) -> float:
    """The largest radius ``n`` samples can certify (all agree): sigma * Phi^-1(alpha^(1/n))."""
    return float(sigma * norm.ppf(alpha ** (1.0 / n)))


def predict_counts(counts: np.ndarray, alpha: float) -> np.ndarray:
    """Cohen's PREDICT from the two classes' counts ``(N, 2)``: the larger class, or ABSTAIN unless the
    two-sided binomial test between the two counts rejects a tie at level ``alpha``.

    Returns a class other than the smoothed classifier's with probability at most alpha, which is
    what makes a confident change of class evidence against a certificate.
    """
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, 2)
    out = np.full(len(counts), ABSTAIN, dtype=np.int64)
    for i, (c0, c1) in enumerate(counts):
        if c0 + c1 and binomtest(int(max(c0, c1)), int(c0 + c1), 0.5).pvalue <= alpha:
            out[i] = int(c1 > c0)
    return out


def allowed_violations(certified: int, rate: float, false_alarm: float) -> int:
    """The most violations consistent with each certified triplet failing with probability ``rate``:
    more happen with probability below ``false_alarm`` under Binomial(certified, rate)."""
    return int(binom.ppf(1.0 - false_alarm, certified, min(rate, 1.0))) if certified else 0


# -- the Lipschitz route: smoothed unit-norm embeddings ------------------------------------------------


def smoothed_lipschitz(sigma: float) -> float:
    """The l2 Lipschitz constant of E[u(x + e)], e ~ N(0, sigma^2 I), for any map u into the unit ball.

    Along a unit direction v, <u, v> is in [-1, 1] and the derivative of its Gaussian mean is at most
    E|<e, v>| / sigma^2 = sqrt(2 / pi) / sigma (tight for a sign function, see the tests).
    """
    return math.sqrt(2.0 / math.pi) / sigma


def hoeffding_slack(n: int, alpha: float) -> float:
    """Two-sided Hoeffding half-width: the mean of n independent values in [-1, 1] is within it of their
    expectation with probability >= 1 - alpha (two-sided, because the sign is read from the same samples)."""
    return math.sqrt(2.0 * math.log(2.0 / alpha) / n)


def margin_certificate(margin: np.ndarray, n: int, sigma: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, radius) from Monte Carlo margins m_hat = mean <u(x + e), a> / ||a|| (class 1 where m_hat < 0).

    With probability >= 1 - alpha the true margin has m_hat's sign and |m| >= |m_hat| - slack, and it
    moves by at most L per unit of l2 distance, so the sign holds within (|m_hat| - slack) / L.
    Abstains (radius 0) unless |m_hat| > slack.
    """
    m = np.asarray(margin, dtype=np.float64)
    lower = np.abs(m) - hoeffding_slack(n, alpha)
    abstain = lower <= 0
    prediction = np.where(abstain, ABSTAIN, (m < 0).astype(np.int64))
    radius = np.where(abstain, 0.0, lower / smoothed_lipschitz(sigma))
    return prediction.astype(np.int64), radius
