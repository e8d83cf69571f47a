"""95% intervals over triplets for every score row, from the unit's per-triplet ``agreement``.

A split's score is the size-weighted mean of its groups' mean agreements (NIGHT's test halves are two
groups), i.e. the mean over its triplets. Where every agreement is 0 or 1 and there is one group the
score is a binomial proportion and gets the exact (Clopper-Pearson) interval; otherwise (fractional
votes, ties counted half, several groups) a seeded BCa bootstrap that resamples each group on its own
(stratified, as the split was drawn), with the size-weighted mean as its statistic. The statistics are
scipy's and statsmodels'; this module only picks the method per cell and feeds them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

CONFIDENCE = 0.95
N_RESAMPLES = 2000
EXACT = "clopper-pearson"
BOOTSTRAP = "bootstrap"
#: the score must be the mean of the rows an interval is drawn from (a plugin may score otherwise: then no interval)
MATCH_TOLERANCE = 1e-6
INTERVAL_COLUMNS = ["ci_low", "ci_high", "ci_method"]


@dataclass(frozen=True)
class Interval:
    """A 95% interval in percent, like the score, and how it was computed (``""`` with NaN bounds: none)."""

    low: float = math.nan
    high: float = math.nan
    method: str = ""


NONE = Interval()


def _binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


def _statistic(fixed: float, total: int):
    """The split's score from resampled groups: the size-weighted mean of group means, i.e. the mean over
    triplets, with the constant groups' sum ``fixed`` (vectorised over resamples)."""

    def weighted_mean(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return (fixed + sum(s.shape[axis] * np.mean(s, axis=axis) for s in samples)) / total

    return weighted_mean


def interval(agreement: np.ndarray, groups: np.ndarray | None = None, *, seed: int = 0) -> Interval:
    """The 95% interval (percent) of the mean of ``agreement`` over triplets, resampled within ``groups``.

    No triplets: NaN. One triplet, or all agreements equal, under a bootstrap: the point itself (every
    resample gives it). ``seed`` makes the bootstrap reproducible: same rows and seed, same numbers.
    """
    values = np.asarray(agreement, dtype=float)
    values_ok = np.isfinite(values)
    if not values_ok.any():
        return NONE
    labels = np.zeros(len(values), dtype=int) if groups is None else pd.factorize(np.asarray(groups))[0]
    values, labels = values[values_ok], labels[values_ok]
    samples = [values[labels == g] for g in np.unique(labels)]
    if len(samples) == 1 and _binary(values):
        from statsmodels.stats.proportion import proportion_confint

        low, high = proportion_confint(int(values.sum()), len(values), alpha=1 - CONFIDENCE, method="beta")
        return Interval(100.0 * float(low), 100.0 * float(high), EXACT)
    return bootstrap_interval(values, labels, seed=seed)


def bootstrap_interval(values: np.ndarray, groups: np.ndarray | None = None, *, seed: int = 0) -> Interval:
    """The seeded BCa bootstrap interval (percent) of the mean of ``values``, each of ``groups`` resampled on its
    own: a score's (agreements) or a paired difference's (per-triplet differences of two metrics)."""
    values = np.asarray(values, dtype=float)
    labels = np.zeros(len(values), dtype=int) if groups is None else pd.factorize(np.asarray(groups))[0]
    keep = np.isfinite(values)
    values, labels = values[keep], labels[keep]
    if not len(values):
        return NONE
    samples = [values[labels == g] for g in np.unique(labels)]
    varying = [s for s in samples if len(s) > 1 and np.ptp(s) > 0]
    if not varying:  # every resample within groups is the sample itself (all equal, one triplet, constant groups)
        point = 100.0 * float(values.mean())
        return Interval(point, point, BOOTSTRAP)
    fixed = float(values.sum() - sum(s.sum() for s in varying))  # groups every resample leaves as they are
    return _bootstrap(varying, _statistic(fixed, len(values)), seed)


def _bootstrap(samples: list[np.ndarray], statistic, seed: int) -> Interval:
    """scipy's BCa bootstrap, each group resampled on its own (paired=False); percentile where BCa is undefined."""
    from scipy.stats import bootstrap

    bounds = (math.nan, math.nan)
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a degenerate BCa gives NaN (and a warning): percentile then
            result = bootstrap(
                tuple(samples),
                statistic,
                n_resamples=N_RESAMPLES,
                confidence_level=CONFIDENCE,
                method=method,
                paired=False,
                vectorized=True,
                random_state=np.random.default_rng(seed),
            )
        bounds = tuple(float(v) for v in result.confidence_interval)
        if all(math.isfinite(v) for v in bounds):
            break
    return Interval(100.0 * bounds[0], 100.0 * bounds[1], BOOTSTRAP)


def _same(column: pd.Series, value: object) -> pd.Series:
    """Rows whose ``column`` equals ``value``, NaN/None matching NaN/None (norm and eps of a natural cell)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return column.isna()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (pd.to_numeric(column, errors="coerce") - float(value)).abs() < 1e-12
    return column.astype(str) == str(value)


def row_interval(frame: pd.DataFrame | None, row: dict, *, seed: object) -> Interval:
    """The interval of one score row of a record, from that record's per-triplet rows.

    Rows are matched on evaluation, norm and eps (where the frame has them) and on group where the score
    row is one group's; the interval is only given where the score is the mean agreement of those rows."""
    if frame is None or not len(frame) or "agreement" not in frame.columns:
        return NONE
    keep = pd.Series(True, index=frame.index)
    for key in ("evaluation", "norm", "eps"):
        if key in frame.columns:
            keep &= _same(frame[key], row.get(key))
    groups = frame["group"] if "group" in frame.columns else None
    if groups is not None and row.get("split") in set(groups.astype(str)):
        keep &= groups.astype(str) == str(row.get("split"))
    part = frame[keep]
    agreement = pd.to_numeric(part["agreement"], errors="coerce").to_numpy(dtype=float)
    score = row.get("score")
    if not len(part) or score is None or not np.isfinite(agreement).all():
        return NONE
    if abs(100.0 * float(agreement.mean()) - float(score)) > MATCH_TOLERANCE * max(1.0, abs(float(score))):
        return NONE  # the score is not this mean (a plugin's own statistic): no interval rather than a wrong one
    return interval(agreement, None if groups is None else part["group"].to_numpy(), seed=seed_of(seed))


def seed_of(seed: object) -> int:
    """The unit's seed as the bootstrap's; a record without one uses 0 (still reproducible)."""
    try:
        value = int(seed)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    return value if value >= 0 else 0


def interval_footer(scores: pd.DataFrame, items: str = "triplets") -> str:
    """The footer line that says what the bracketed numbers are; empty when no cell has an interval."""
    methods = set(scores["ci_method"].dropna()) if "ci_method" in scores.columns else set()
    methods.discard("")
    if not methods:
        return ""
    seeds = (
        sorted({seed_of(s) for s in scores.loc[scores["ci_method"] == BOOTSTRAP, "seed"]})
        if BOOTSTRAP in methods
        else []
    )
    exact = "exact binomial (Clopper-Pearson)"
    resampled = (
        f"a BCa bootstrap of the mean agreement ({N_RESAMPLES} resamples within each group, "
        f"seed {', '.join(map(str, seeds))})"
    )
    how = (
        f"{exact} where every agreement is 0 or 1 in one group, otherwise {resampled}"
        if methods == {EXACT, BOOTSTRAP}
        else (f"{exact}: every agreement is 0 or 1" if EXACT in methods else resampled)
    )
    return f"[low, high] after a score: its {round(100 * CONFIDENCE)}% interval over the {items}, {how}"
