"""``recall-smoothing``: CERTIFY of the top-1 gallery item, checked against a closed form.

With the identity embedding, the l2 distance and a gallery of two items, the top-1 decision is the half-space on
one side of their bisector; Gaussian smoothing leaves a half-space unchanged, so the smoothed top-1's exact radius
is the query's distance t to the bisector. A sound certifier exceeds it with probability at most alpha per query;
a certifier that uses the estimate p_A instead of its lower bound exceeds it on most queries near the bisector,
and the check below is shown to catch it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import beta, binom, norm
from statsmodels.stats.proportion import proportion_confint
from torch import Tensor

import lipsim_bench.evaluations.retrieval_smoothing as module
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import Context
from lipsim_bench.evaluations.gallery_batches import GalleryBatch, GalleryEmbeddings, distance_matrix
from lipsim_bench.evaluations.retrieval_smoothing import (
    DEFAULT_RECALL_SMOOTHING_EPS,
    RecallSmoothing,
    RecallSmoothingOptions,
    top1_counts,
)
from lipsim_bench.evaluations.smoothing_stats import ABSTAIN, Certificate
from lipsim_bench.metrics import PerceptualMetric

SIGMA, ALPHA = 0.25, 0.001
SHAPE = (3, 4, 4)  # 48 values: a multiple of 16, so the noise is drawn in one call


class Pixels(PerceptualMetric):
    """embed = the flattened image, distance = l2: the top-1 of two gallery items is a half-space."""

    distance_kind = "l2"

    def embed(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        return (e_a - e_b).norm(dim=1)


def two_item_batch(t: Tensor, seed: int = 0) -> GalleryBatch:
    """Queries at signed distance ``t`` from the bisector of gallery items g0, g1 (> 0: g1's side); g1 is relevant."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.rand(2, *SHAPE, generator=gen, dtype=torch.float64)
    w = (g[1] - g[0]).flatten()
    w = w / w.norm()
    n = len(t)
    side = torch.randn(n, w.numel(), generator=gen, dtype=torch.float64) * 0.1
    side = side - (side @ w)[:, None] * w  # along the bisector: does not move the decision
    query = ((g[0] + g[1]).flatten() / 2 + t.double()[:, None] * w + side).view(n, *SHAPE)
    metric = Pixels()
    batch = {
        "index": torch.arange(n),
        "id": [f"q{i}" for i in range(n)],
        "query": query,
        "label": ["b"] * n,
        "group": ["test"] * n,
        "relevant": torch.tensor([[False, True]] * n),
    }
    e_gallery = metric.embed(g)
    e_query = metric.embed(query)
    gallery = GalleryEmbeddings(["g0", "g1"], ["a", "b"], e_gallery)
    return GalleryBatch(batch, e_query, gallery, distance_matrix(metric, e_query, e_gallery).double())


def certify(t: Tensor, seed: int = 0, **options: object) -> pd.DataFrame:
    evaluation = RecallSmoothing(RecallSmoothingOptions(**{"sigma": SIGMA, "alpha": ALPHA, **options}))  # type: ignore[arg-type]
    return evaluation.run(Pixels(), [two_item_batch(t)], Context(torch.device("cpu"), seed, "pixels"))


def check_sound(radius: np.ndarray, exact: np.ndarray, alpha: float) -> None:
    """Fail on a certifier whose radii exceed the exact ones more often than a Binomial(N, alpha) allows (at 1e-6)."""
    over = radius > exact * (1 + 1e-9) + 1e-12
    allowed = int(binom.ppf(1 - 1e-6, len(radius), alpha))
    assert over.sum() <= allowed, f"{over.sum()} of {len(radius)} radii exceed the exact one (at most {allowed})"


def test_the_same_seed_gives_the_same_rows_and_the_batch_size_changes_nothing() -> None:
    t = torch.linspace(-0.3, 0.3, 12)
    first = certify(t, seed=3)
    assert first.equals(certify(t, seed=3))
    assert first.equals(certify(t, seed=3, noise_batch=7))  # common random numbers: one stream per query
    other = certify(t, seed=4)
    assert not np.array_equal(first["n_a"].to_numpy(), other["n_a"].to_numpy())  # the seed does reach the noise


def test_radius_and_bound_are_clopper_pearson_and_cohen_by_scipy() -> None:
    rows = certify(torch.linspace(-0.6, 0.6, 16), n=50)
    rows = rows[rows["eps"] == 0]
    n_a = rows["n_a"].to_numpy()
    lower = np.where(n_a > 0, beta.ppf(ALPHA, np.maximum(n_a, 1), 50 - n_a + 1), 0.0)
    np.testing.assert_allclose(rows["p_lower"], lower, rtol=1e-12)
    np.testing.assert_allclose(rows["p_lower"], proportion_confint(n_a, 50, alpha=2 * ALPHA, method="beta")[0])
    kept = lower > 0.5
    assert kept.any() and (~kept).any()
    np.testing.assert_allclose(rows["radius"][kept], SIGMA * norm.ppf(lower[kept]), rtol=1e-12)
    assert (rows["radius"][~kept] == 0).all() and (rows["prediction"][~kept] == ABSTAIN).all()
    assert rows["abstain"].tolist() == (~kept).tolist()


def test_certified_recall_never_exceeds_the_smoothed_recall_and_falls_with_eps() -> None:
    rows = certify(torch.linspace(-0.5, 0.8, 20))
    by_eps = rows.pivot(index="id", columns="eps", values="agreement")
    assert list(by_eps.columns) == [0.0, *sorted(DEFAULT_RECALL_SMOOTHING_EPS)]
    assert (by_eps.diff(axis=1).iloc[:, 1:] <= 0).all().all()  # per query, every radius at most the one before
    clean = rows[rows["eps"] == 0]
    assert clean["agreement"].tolist() == (clean["hit"] & ~clean["abstain"]).astype(float).tolist()
    assert clean["agreement"].sum() > 0 and clean["hit"][clean["prediction"] == 0].eq(False).all()  # g0 irrelevant


def test_radii_are_sound_on_half_spaces() -> None:
    t = torch.linspace(0.01, 0.3, 40)
    rows = certify(t, n=20)
    rows = rows[rows["eps"] == 0]
    assert (rows["prediction"][~rows["abstain"]] == 1).all()  # g1's side: the smoothed top-1 is g1
    check_sound(rows["radius"].to_numpy(), t.numpy(), ALPHA)


def test_the_soundness_check_catches_a_bound_that_uses_p_a_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """The estimate n_A / n in place of its lower bound: at n 20 all draws agree near the bisector, radius inf."""

    def broken(guess: np.ndarray, guess_count: np.ndarray, n: int, sigma: float, alpha: float) -> Certificate:
        p = np.asarray(guess_count, dtype=np.float64) / n
        abstain = p <= 0.5
        radius = np.where(abstain, 0.0, sigma * norm.ppf(np.where(abstain, 0.75, p)))
        return Certificate(np.where(abstain, ABSTAIN, guess).astype(np.int64), p, radius)

    monkeypatch.setattr(module, "certify_counts", broken)
    with pytest.raises(AssertionError, match="exceed the exact one"):
        test_radii_are_sound_on_half_spaces()


def test_a_draw_with_several_nearest_items_counts_for_none() -> None:
    metric = Pixels()
    twins = torch.rand(1, *SHAPE).expand(2, *SHAPE).flatten(1)  # two identical gallery items: every draw ties
    counts = top1_counts(metric, "pixels", torch.rand(*SHAPE), twins, 30, SIGMA, 0, 8)
    assert counts.tolist() == [0, 0]
    single = top1_counts(metric, "pixels", torch.rand(*SHAPE), twins[:1], 30, SIGMA, 0, 8)
    assert single.tolist() == [30]


def test_bad_options_are_one_line_naming_the_option() -> None:
    with pytest.raises(BenchError, match=r"recall-smoothing\.sigma=0 is invalid.*--set recall-smoothing\.sigma"):
        RecallSmoothingOptions(sigma=0)
    with pytest.raises(BenchError, match=r"recall-smoothing\.n0"):
        RecallSmoothingOptions(n0=0)


def test_scores_only_the_retrieval_task_and_names_its_sigma() -> None:
    evaluation = RecallSmoothing(RecallSmoothingOptions(sigma=0.5))
    assert RecallSmoothing.tasks == ("retrieval",)
    assert evaluation.column == "recall-smoothing(sigma=0.5)"
    assert RecallSmoothing.default_options("sample-retrieval", 0) == {"eps": DEFAULT_RECALL_SMOOTHING_EPS}
    rows = certify(torch.tensor([0.4, -0.4]))
    note = evaluation.notes("pixels", rows)[0]
    assert "abstains on" in note and "/2 queries" in note and "no radius above" in note
