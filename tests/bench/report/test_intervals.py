"""95% intervals on every score: the exact binomial where it applies, a seeded stratified bootstrap elsewhere."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from lipsim_bench.report.intervals import (
    BOOTSTRAP,
    EXACT,
    NONE,
    Interval,
    bootstrap_interval,
    interval,
    interval_footer,
    row_interval,
)
from lipsim_bench.report.tables import render_tables


def test_binary_agreements_of_one_group_get_the_clopper_pearson_interval() -> None:
    found = interval(np.r_[np.ones(96), np.zeros(4)])
    low, high = proportion_confint(96, 100, alpha=0.05, method="beta")
    assert found.method == EXACT
    assert found.low == pytest.approx(100 * low) and found.high == pytest.approx(100 * high)
    assert (round(found.low, 2), round(found.high, 2)) == (90.07, 98.90)  # the textbook 96/100 interval
    everything = interval(np.ones(100))  # all agree: an interval still, [96.4, 100]
    assert everything.method == EXACT and everything.high == 100.0 and round(everything.low, 2) == 96.38


def _fractional(n: int = 120, seed: int = 1) -> np.ndarray:
    """NIGHT-like agreements: fractional votes."""
    return np.random.default_rng(seed).choice([0.0, 1 / 3, 2 / 3, 1.0], size=n, p=[0.15, 0.15, 0.3, 0.4])


def test_the_bootstrap_contains_the_score_and_is_seeded() -> None:
    values = _fractional()
    found = interval(values, seed=0)
    assert found.method == BOOTSTRAP and found.low < 100 * values.mean() < found.high
    assert 5 < found.high - found.low < 25  # a mean of ~120 values in [0, 1]
    assert interval(values, seed=0) == found  # same rows and seed: same numbers
    assert interval(values, seed=1) != found


def test_resampling_within_groups_is_narrower_than_pooled() -> None:
    """Two groups far apart (NIGHT's halves): pooled resampling moves triplets between them, stratified does not."""
    rng = np.random.default_rng(0)
    values = np.r_[rng.uniform(0.85, 1.0, 60), rng.uniform(0.0, 0.15, 60)]
    groups = np.r_[["imagenet"] * 60, ["no_imagenet"] * 60]
    stratified, pooled = bootstrap_interval(values, groups, seed=0), bootstrap_interval(values, None, seed=0)
    assert stratified.low < 100 * values.mean() < stratified.high
    assert (stratified.high - stratified.low) < 0.5 * (pooled.high - pooled.low)
    # binary agreements in two groups are not one binomial: they get the stratified bootstrap, not Clopper-Pearson
    assert interval(np.r_[np.ones(60), np.zeros(60)], groups).method == BOOTSTRAP


def test_degenerate_cells_give_a_point_or_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert interval(np.array([])) == NONE and math.isnan(NONE.low)
        assert interval(np.array([0.5])) == interval(np.full(7, 0.5)) == Interval(50.0, 50.0, BOOTSTRAP)  # ties only
        assert interval(np.array([1.0])).method == EXACT and round(interval(np.array([1.0])).low, 1) == 2.5
        one_each = interval(np.array([1.0, 0.5]), np.array(["a", "b"]))  # one triplet per group: nothing to resample
        assert one_each.low == one_each.high == 75.0
        lonely = interval(np.r_[[1.0], _fractional(30)], np.r_[["a"], ["b"] * 30])  # a one-triplet group beside others
        assert lonely.method == BOOTSTRAP and lonely.low < lonely.high


def _triplets() -> pd.DataFrame:
    agreement = np.r_[np.ones(8), np.zeros(2), np.ones(3), [0.5, 0.5]]
    return pd.DataFrame(
        {
            "evaluation": "natural",
            "norm": None,
            "eps": np.nan,
            "group": ["g1"] * 10 + ["g2"] * 5,
            "id": range(15),
            "agreement": agreement,
        }
    )


def test_a_score_row_is_matched_to_its_triplets_and_checked_against_them() -> None:
    frame = _triplets()
    row = {"evaluation": "natural", "norm": None, "eps": None, "split": "g1", "score": 80.0}
    assert row_interval(frame, row, seed=0).method == EXACT  # one group's row: its 10 binary agreements
    whole = {**row, "split": "test", "score": 100 * frame["agreement"].mean()}
    assert row_interval(frame, whole, seed=0).method == BOOTSTRAP  # the split's row: both groups, stratified
    assert row_interval(frame, {**whole, "score": 50.0}, seed=0) == NONE  # not the mean of these rows: no interval
    assert row_interval(frame, {**row, "evaluation": "apgd"}, seed=0) == NONE
    assert row_interval(frame.drop(columns="agreement"), row, seed=0) == NONE


def test_tables_show_the_interval_in_each_cell_and_say_what_it_is() -> None:
    scores = pd.DataFrame(
        [
            {"metric": "a", "dataset": "d", "split": "test", "evaluation": "natural", "norm": None, "eps": np.nan}
            | {"score": 96.0, "n": 100, "ci_low": 90.07, "ci_high": 98.9, "ci_method": EXACT, "kind": "clean"}
            | {"seed": 0, "settings": "{}"},
            {"metric": "b", "dataset": "d", "split": "test", "evaluation": "natural", "norm": None, "eps": np.nan}
            | {"score": 70.0, "n": 100, "ci_low": np.nan, "ci_high": np.nan, "ci_method": "", "kind": "clean"}
            | {"seed": 0, "settings": "{}"},
        ]
    )
    document = render_tables(scores, "d", "test", [], "provenance: test")
    assert "| a | 96.00 [90.1, 98.9] |" in document.markdown and "| b | 70.00 |" in document.markdown
    assert interval_footer(scores) in document.markdown and "Clopper-Pearson" in interval_footer(scores)
    assert r"96.00\\[-2pt]{\scriptsize [90.1, 98.9]}" in document.latex
    assert interval_footer(scores.assign(ci_method="")) == ""
