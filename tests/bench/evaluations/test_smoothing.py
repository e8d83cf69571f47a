"""``smoothing``: Cohen et al.'s CERTIFY on the 2AFC decision, checked against a closed form.

For the identity embedding with the l2 distance, the decision d(x, x1) < d(x, x0) is the half-space
<x - (x0 + x1) / 2, x1 - x0> > 0. Gaussian smoothing leaves a half-space unchanged, P[f(x + e) = c_A]
= Phi(t / sigma) with t the distance to the hyperplane, and t is the exact radius: a sound
certifier never exceeds it (but with probability alpha per triplet), and with many samples comes
close to it. The checks are shown to catch broken certifiers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binom, norm
from torch import Tensor

import lipsim_bench as bench
import lipsim_bench.evaluations.smoothing as smoothing_module
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import get_evaluation
from lipsim_bench.evaluations.base import Context, EmbeddedBatch
from lipsim_bench.evaluations.options import build_options
from lipsim_bench.evaluations.radii import certified_agreement
from lipsim_bench.evaluations.smoothing import Smoothing, SmoothingOptions, default_smoothing_eps
from lipsim_bench.evaluations.smoothing_stats import Certificate, certify_counts, clopper_pearson_lower, max_radius
from lipsim_bench.evaluations.twoafc import twoafc_agreement
from lipsim_bench.metrics import PerceptualMetric
from lipsim_bench.report.plot_data import certified_mismatches
from lipsim_bench.report.plots import plot_run

SIGMA = 0.25
ALPHA = 0.001


class HalfSpace(PerceptualMetric):
    """embed = the flattened image, distance = l2: the 2AFC decision is a half-space in pixel space."""

    distance_kind = "l2"

    def embed(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        return (e_a - e_b).norm(dim=1)


class Recording(HalfSpace):
    """Remembers every image it embeds; ``scale`` changes its distances but not its decisions' inputs."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale, self.seen = scale, []

    def embed(self, x: Tensor) -> Tensor:
        self.seen.append(x.clone())
        return self.scale * x.flatten(1)


def embedded(
    metric: PerceptualMetric, ref: Tensor, x0: Tensor, x1: Tensor, p: Tensor, ids: list[str] | None = None
) -> EmbeddedBatch:
    ids = ids or [f"t{i}" for i in range(len(ref))]
    batch = {
        "ref": ref,
        "x0": x0,
        "x1": x1,
        "p": p,
        "id": ids,
        "group": ["test"] * len(ref),
        "index": torch.arange(len(ref)),
    }
    with torch.no_grad():
        e_ref, e0, e1 = metric.embed(ref), metric.embed(x0), metric.embed(x1)
        return EmbeddedBatch(batch, e_ref, e0, e1, metric.distance(e_ref, e0), metric.distance(e_ref, e1))


def half_space_triplets(distances: Tensor, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """(ref, x0, x1) of shape (N, 3, 4, 4) with ref at signed distance ``distances`` from the bisector (> 0: x1's side)."""
    gen = torch.Generator().manual_seed(seed)
    n = len(distances)
    x0, x1 = (torch.rand(n, 3, 4, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    w = (x1 - x0).flatten(1)
    w = w / w.norm(dim=1, keepdim=True)
    side = torch.randn(n, 48, generator=gen, dtype=torch.float64) * 0.1
    side = side - (side * w).sum(dim=1, keepdim=True) * w  # orthogonal to the normal: does not move the decision
    ref = ((x0 + x1).flatten(1) / 2 + distances.double()[:, None] * w + side).view(n, 3, 4, 4)
    return ref, x0, x1


def run_smoothing(
    metric: PerceptualMetric, items: list[EmbeddedBatch], seed: int = 0, name: str = "toy", **options: object
) -> pd.DataFrame:
    evaluation = Smoothing(SmoothingOptions(**{"sigma": SIGMA, "alpha": ALPHA, **options}))  # type: ignore[arg-type]
    return evaluation.run(metric, items, Context(torch.device("cpu"), seed, name))


def certify_half_spaces(distances: Tensor, seed: int, **options: object) -> pd.DataFrame:
    metric = HalfSpace()
    ref, x0, x1 = half_space_triplets(distances, seed)
    rows = run_smoothing(metric, [embedded(metric, ref, x0, x1, (distances > 0).float())], seed=seed, **options)
    return rows[rows["eps"] == 0].reset_index(drop=True)


def check_certificates(
    radius: np.ndarray, exact: np.ndarray, *, n: int, sigma: float, alpha: float, tolerance: float | None = None
) -> None:
    """Fail on a certifier that overstates radii more often than alpha allows, or (``tolerance``) strays from exact ones.

    Each radius exceeds the exact one with probability <= alpha; more violations than a Binomial(N, alpha)
    gives with probability 1e-6 mean a broken certifier. Tightness is only asked where the n-limit
    sigma * Phi^-1(alpha^(1/n)) does not clip the radius.
    """
    over = radius > exact * (1 + 1e-9) + 1e-12
    allowed = int(binom.ppf(1 - 1e-6, len(radius), alpha))
    assert over.sum() <= allowed, (
        f"{int(over.sum())} of {len(radius)} radii exceed the exact distance (at most {allowed} allowed at alpha {alpha})"
    )
    if tolerance is not None:
        free = exact < max_radius(n, sigma, alpha) - tolerance
        worst = float(np.abs(radius - exact)[free].max())
        assert worst <= tolerance, f"radius off the exact distance by {worst:.4f} > {tolerance}"


# -- the statistics ------------------------------------------------------------------------------------


def test_clopper_pearson_and_the_largest_radius_match_the_closed_forms() -> None:
    # all n agree: the bound is alpha^(1/n), the radii the reference's table gives
    for n, multiple in ((100, 1.50), (1_000, 2.46), (10_000, 3.20), (100_000, 3.81)):
        assert float(clopper_pearson_lower(np.array([n]), n, ALPHA)[0]) == pytest.approx(ALPHA ** (1 / n))
        assert max_radius(n, 1.0, ALPHA) == pytest.approx(multiple, abs=0.005)
    assert float(clopper_pearson_lower(np.array([0]), 10, ALPHA)[0]) == 0.0
    # the bound is exact for its level: P[Binomial(n, q) >= k] = alpha at q = the bound of k
    q = float(clopper_pearson_lower(np.array([70]), 100, 0.05)[0])
    assert binom.sf(69, 100, q) == pytest.approx(0.05, rel=1e-6)


def test_certify_counts_abstains_at_one_half_and_scales_with_sigma() -> None:
    cert = certify_counts(np.array([1, 0, 1]), np.array([500, 1000, 990]), 1000, SIGMA, ALPHA)
    assert cert.prediction.tolist() == [-1, 0, 1] and cert.radius[0] == 0.0
    assert cert.radius[1] == pytest.approx(max_radius(1000, SIGMA, ALPHA))
    doubled = certify_counts(np.array([1]), np.array([990]), 1000, 2 * SIGMA, ALPHA)
    assert doubled.radius[0] == pytest.approx(2 * cert.radius[2])


# -- the closed form ------------------------------------------------------------------------------------


def test_radii_never_exceed_the_exact_distance_beyond_the_alpha_rate() -> None:
    gen = torch.Generator().manual_seed(1)
    distances = (torch.rand(200, generator=gen) * 0.58 + 0.02) * torch.where(
        torch.rand(200, generator=gen) < 0.5, -1.0, 1.0
    )
    rows = certify_half_spaces(distances, seed=1, n0=100, n=1000)
    prediction, side = rows["prediction"].to_numpy(), (distances > 0).long().numpy()
    assert ((prediction == side) | (prediction == -1)).all() and (prediction == side)[
        distances.abs().numpy() > 0.1
    ].all()
    check_certificates(rows["radius"].to_numpy(), distances.abs().numpy(), n=1000, sigma=SIGMA, alpha=ALPHA)


def _point_estimate(guess: np.ndarray, guess_count: np.ndarray, n: int, sigma: float, alpha: float) -> Certificate:
    """Broken: the point estimate n_A / n in place of the lower confidence bound."""
    cert = certify_counts(guess, guess_count, n, sigma, alpha)
    p_hat = np.clip(guess_count / n, 0.5, 1 - 1e-12)
    return Certificate(cert.prediction, p_hat, sigma * norm.ppf(p_hat))


@pytest.mark.parametrize(
    "certifier, tolerance, error",
    [
        (certify_counts, 0.03, None),  # the real one: sound, and within 0.03 of the exact radius at n = 10,000
        (_point_estimate, None, "exceed the exact distance"),  # overstates about half of the radii
        (lambda g, c, n, s, a: certify_counts(g, c, n, 2 * s, a), None, "exceed the exact distance"),  # sigma doubled
        (
            lambda g, c, n, s, a: certify_counts(g, c, n, s / 2, a),
            0.03,
            "off the exact distance",
        ),  # sigma halved: sound, not tight
    ],
    ids=["real", "point-estimate", "sigma-doubled", "sigma-halved"],
)
def test_the_real_certifier_is_sound_and_tight_and_the_checks_catch_broken_ones(
    monkeypatch: pytest.MonkeyPatch, certifier, tolerance: float | None, error: str | None
) -> None:
    distances = torch.linspace(0.05, 0.375, 40)  # up to 1.5 sigma, where the bound is within 0.03 at n = 10,000
    n = 10_000 if tolerance else 1000
    monkeypatch.setattr(smoothing_module, "certify_counts", certifier)
    rows = certify_half_spaces(distances, seed=3, n0=1000, n=n, noise_batch=1000)  # n0: the selection never errs here
    check = lambda: check_certificates(
        rows["radius"].to_numpy(), distances.numpy(), n=n, sigma=SIGMA, alpha=ALPHA, tolerance=tolerance
    )  # noqa: E731
    if error is None:
        check()
    else:
        with pytest.raises(AssertionError, match=error):
            check()


# -- abstentions, noise, determinism ---------------------------------------------------------------------


def test_a_triplet_on_the_boundary_and_a_degenerate_pair_abstain() -> None:
    metric = HalfSpace()
    ref, x0, x1 = half_space_triplets(torch.tensor([0.0, 0.4]), seed=4)
    x1[1] = x0[1]  # x0 == x1: every noisy decision is a tie, which counts for neither image
    rows = run_smoothing(metric, [embedded(metric, ref, x0, x1, torch.tensor([0.8, 0.3]))], n0=50, n=500)
    assert rows["abstain"].all() and (rows["prediction"] == -1).all() and (rows["radius"] == 0).all()
    assert (rows.loc[rows["id"] == "t1", "n_a"] == 0).all()
    assert np.allclose(rows["agreement"], np.where(rows["id"] == "t0", 0.2, 0.3))  # the worst case, eps 0 included
    assert sorted(rows["eps"].unique()) == sorted((0.0,) + SmoothingOptions().eps)


def test_noise_is_gaussian_unclamped_and_only_on_the_reference() -> None:
    metric = Recording()
    ref, x0, x1 = half_space_triplets(torch.tensor([0.1, -0.2]), seed=5)
    run_smoothing(metric, [embedded(metric, ref, x0, x1, torch.tensor([1.0, 0.0]))], n0=10, n=300, noise_batch=64)
    seen = torch.cat(metric.seen[3:])  # after the clean ref, x0, x1
    assert len(seen) == 2 * (10 + 300)
    noise = torch.cat([seen[:310] - ref[0], seen[310:] - ref[1]])
    assert noise.mean().abs() < 0.01 and noise.std().item() == pytest.approx(SIGMA, rel=0.02)
    assert (seen < 0).any() and (seen > 1).any()


def test_same_seed_same_rows_whatever_the_batching_and_the_same_noise_for_every_metric() -> None:
    ref, x0, x1 = half_space_triplets(torch.tensor([0.05, -0.1, 0.3, 0.01]), seed=6)
    p = torch.tensor([1.0, 0.2, 0.7, 0.5])
    first, second, other = Recording(), Recording(), Recording(scale=3.0)
    # every metric has its own name, as in a run: noise seeded per metric (by name) would differ and fail here
    whole = run_smoothing(first, [embedded(first, ref, x0, x1, p)], name="toy-a", n0=16, n=200, noise_batch=50)
    split = run_smoothing(
        second,
        [
            embedded(second, ref[i : i + 2], x0[i : i + 2], x1[i : i + 2], p[i : i + 2], [f"t{i}", f"t{i + 1}"])
            for i in (0, 2)
        ],
        name="toy-b",
        n0=16,
        n=200,
        noise_batch=7,
    )
    columns = ["id", "eps", "agreement", "radius", "p_lower", "prediction", "n_a"]
    key = ["id", "eps"]
    pd.testing.assert_frame_equal(
        whole[columns].sort_values(key).reset_index(drop=True), split[columns].sort_values(key).reset_index(drop=True)
    )
    run_smoothing(other, [embedded(other, ref, x0, x1, p)], name="toy-c", n0=16, n=200, noise_batch=200)
    noisy = [torch.cat(m.seen[3:]) for m in (first, other)]  # drop the clean ref, x0, x1
    assert torch.equal(noisy[0], noisy[1])  # common random numbers
    reseeded = Recording()
    run_smoothing(reseeded, [embedded(reseeded, ref, x0, x1, p)], seed=1, n0=16, n=200)
    assert not torch.equal(torch.cat(reseeded.seen[3:]), noisy[0])


class Slab(HalfSpace):
    """Picks x1 only inside a thin slab 0 < <w, x> < 0.02: noise of sigma 0.25 almost always leaves it."""

    def __init__(self, w: Tensor) -> None:
        super().__init__()
        self.w = w

    def embed(self, x: Tensor) -> Tensor:
        s = x.flatten(1).double() @ self.w
        return ((s > 0) & (s < 0.02)).double()[:, None] * 2 - 1  # +1 in the slab, -1 outside


def test_rows_carry_the_smoothed_decision_where_it_differs_from_the_metrics() -> None:
    """d0, d1 of smoothing rows are the smoothed metric's: with p and radius they reproduce the agreement at every eps."""
    ref, x0, x1 = half_space_triplets(torch.tensor([0.2, -0.1]), seed=8)
    w = torch.nn.functional.normalize(
        torch.randn(48, generator=torch.Generator().manual_seed(8), dtype=torch.float64), dim=0
    )
    ref[0] = (ref[0].flatten() - (ref[0].flatten() @ w - 0.01) * w).view(3, 4, 4)  # <w, ref> = 0.01: inside the slab
    metric = Slab(w)
    item = embedded(metric, ref, x0, x1, torch.tensor([1.0, 0.0]))
    item = EmbeddedBatch(
        item.batch,
        item.e_ref,
        -torch.ones(2, 1, dtype=torch.float64),
        torch.ones(2, 1, dtype=torch.float64),
        *(metric.distance(item.e_ref, torch.full((2, 1), v, dtype=torch.float64)) for v in (-1.0, 1.0)),
    )
    assert (item.d1 < item.d0).tolist() == [True, False]  # the metric itself picks x1 on the first triplet only
    rows = run_smoothing(metric, [item], n0=50, n=500)
    assert (rows["prediction"] == 0).all()  # smoothed: x0 on both
    d0, d1, p, radius = (torch.tensor(rows[c].to_numpy()) for c in ("d0", "d1", "p", "radius"))
    recomputed = torch.stack(
        [certified_agreement(twoafc_agreement(d0, d1, p), p, radius, float(e))[i] for i, e in enumerate(rows["eps"])]
    )
    assert np.allclose(recomputed.numpy(), rows["agreement"].to_numpy())
    assert rows.loc[rows["eps"] == 0, "agreement"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    "option, value, fix",
    [
        ("sigma", "0", "a positive number"),
        ("sigma", "-0.5", "a positive number"),
        ("n0", "0", "a positive integer"),
        ("n", "-3", "a positive integer"),
        ("alpha", "0", "strictly between 0 and 1"),
        ("alpha", "1", "strictly between 0 and 1"),
        ("noise_batch", "0", "a positive integer"),
    ],
)
def test_bad_options_are_one_line(option: str, value: str, fix: str) -> None:
    with pytest.raises(BenchError) as info:
        build_options(SmoothingOptions, "smoothing", {option: value})
    message = str(info.value)
    assert (
        "\n" not in message
        and f"smoothing.{option}=" in message
        and fix in message
        and f"--set smoothing.{option}" in message
    )


# -- end to end ------------------------------------------------------------------------------------------


def test_pixel_l2_end_to_end_on_the_sample_world(tmp_path: Path) -> None:
    """pixel-l2 is a half-space too: the smoothed decision is its own, and never certified beyond its exact radius;
    the rows' smoothed d0, d1 and radius give their scores, so the certified figure draws both certificates."""
    assert get_evaluation("smoothing") is Smoothing
    result = bench.evaluate(
        metric="pixel-l2",
        dataset="sample",
        n=10,
        evaluations=["natural", "certified", "smoothing"],
        smoothing={"n": 200, "n0": 20},
        batch_size=4,
        out=tmp_path / "run",
    )
    scores = result.scores[result.scores["evaluation"] == "smoothing(sigma=0.25)"]
    assert sorted(scores["eps"].unique()) == sorted((0.0,) + default_smoothing_eps("sample"))
    rows = result.triplets
    smooth = rows[(rows["evaluation"] == "smoothing(sigma=0.25)") & (rows["eps"] == 0)].set_index("id")
    exact = rows[(rows["evaluation"] == "certified")].drop_duplicates("id").set_index("id")["radius"]
    natural = rows[rows["evaluation"] == "natural"].set_index("id")
    assert len(smooth) == 10 and (smooth["radius"] <= exact[smooth.index] + 1e-9).all()
    decided = smooth[~smooth["abstain"].astype(bool)]
    base = (natural["d1"] < natural["d0"]).astype(int)[decided.index]
    assert len(decided) >= 5 and (decided["prediction"] == base).all() and (decided["n_a"] > 100).all()
    assert "abstains on" in result.markdown and "n 200" in result.markdown
    assert certified_mismatches(rows, result.scores, "test") == []
    assert "certified_curves.png" in {p.name for p in plot_run(tmp_path / "run", formats=("png",))}


@pytest.mark.slow
def test_a_224px_metric_with_random_weights_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLIP ViT-B/32 (resizes to 224 inside embed), random weights: natural and smoothing on 2 triplets (~40 s on 2 cores)."""
    monkeypatch.setenv("LIPSIM_BENCH_RANDOM_WEIGHTS", "1")
    result = bench.evaluate(
        metric="clip",
        dataset="sample",
        n=2,
        evaluations=["natural", "smoothing"],
        smoothing={"n": 16, "n0": 8, "noise_batch": 8},
    )
    rows = result.triplets[result.triplets["evaluation"] == "smoothing(sigma=0.25)"]
    assert set(rows["metric"]) == {"clip (random weights)"} and len(rows.drop_duplicates("id")) == 2
    assert rows["n_a"].between(0, 16).all() and rows["radius"].between(0, max_radius(16, SIGMA, ALPHA) + 1e-9).all()
    assert math.isfinite(float(result.scores[result.scores["evaluation"] == "smoothing(sigma=0.25)"]["score"].sum()))
