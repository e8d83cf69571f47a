"""``smoothing-embed``: the Lipschitz route, checked against a closed form.

The toy cosine metric embeds x as (<w, x>, 0) with ||w|| = 1, so u(x) = (sign <w, x>, 0) and, with
x0, x1 embedded as (1, 1) and (-1, 1), the smoothed margin is m(x) = 2 Phi(<w, x> / sigma) - 1:
its slope at the boundary is exactly sqrt(2/pi)/sigma (the constant is tight), the smoothed decision
is the half-space <w, x> > 0 (exact radius |<w, x>|), and the certified radius must be
(|m| - slack) / L up to Monte Carlo error. The checks are shown to catch broken variants.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binom, norm
from torch import Tensor

import lipsim_bench as bench
import lipsim_bench.evaluations.smoothing_stats as stats
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import Context, EmbeddedBatch
from lipsim_bench.evaluations.options import build_options
from lipsim_bench.evaluations.smoothing import Smoothing, SmoothingOptions
from lipsim_bench.evaluations.smoothing_embed import SmoothingEmbed, SmoothingEmbedOptions
from lipsim_bench.evaluations.smoothing_stats import hoeffding_slack, smoothed_lipschitz
from lipsim_bench.metrics import PerceptualMetric

SIGMA, ALPHA = 0.25, 0.001


class Sign(PerceptualMetric):
    """Cosine metric whose unit embedding is (sign <w, x>, 0): the worst case of the Lipschitz bound."""

    def __init__(self, w: Tensor) -> None:
        super().__init__()
        self.w, self.seen = w, []

    def embed(self, x: Tensor) -> Tensor:
        self.seen.append(x.clone())
        s = x.flatten(1).double() @ self.w
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def sign_triplets(distances: Tensor, seed: int = 0) -> tuple[Sign, EmbeddedBatch]:
    """References at signed distance ``distances`` from the hyperplane <w, x> = 0, x0 and x1 embedded as (1, 1), (-1, 1):
    the metric picks x1 where <w, x> < 0."""
    gen = torch.Generator().manual_seed(seed)
    n = len(distances)
    w = torch.randn(48, generator=gen, dtype=torch.float64)
    w = w / w.norm()
    ref = torch.rand(n, 48, generator=gen, dtype=torch.float64)
    ref = (ref - (ref @ w)[:, None] * w + distances.double()[:, None] * w).view(n, 3, 4, 4)
    metric = Sign(w)
    e_ref = metric.embed(ref)
    e0, e1 = torch.tensor([[1.0, 1.0]]).double().repeat(n, 1), torch.tensor([[-1.0, 1.0]]).double().repeat(n, 1)
    batch = {
        "ref": ref,
        "x0": ref,
        "x1": ref,
        "p": (distances < 0).float(),
        "id": [f"t{i}" for i in range(n)],
        "group": ["test"] * n,
        "index": torch.arange(n),
    }
    return metric, EmbeddedBatch(batch, e_ref, e0, e1, metric.distance(e_ref, e0), metric.distance(e_ref, e1))


def certify(distances: Tensor, n: int, seed: int = 0) -> pd.DataFrame:
    metric, item = sign_triplets(distances, seed)
    rows = SmoothingEmbed(SmoothingEmbedOptions(sigma=SIGMA, n=n, alpha=ALPHA, noise_batch=500)).run(
        metric, [item], Context(torch.device("cpu"), seed, "sign")
    )
    return rows[rows["eps"] == 0].reset_index(drop=True)


def expected_radius(distances: np.ndarray, n: int) -> np.ndarray:
    """(|m| - slack) / L with the exact smoothed margin m = 2 Phi(s / sigma) - 1; 0 where that is negative."""
    margin = np.abs(2 * norm.cdf(distances / SIGMA) - 1)
    return np.maximum(margin - hoeffding_slack(n, ALPHA), 0.0) / smoothed_lipschitz(SIGMA)


def check_radii(radius: np.ndarray, distances: np.ndarray, n: int) -> None:
    """Sound (never above |s| beyond the alpha rate) and equal to the closed form up to 4 Monte Carlo standard errors."""
    exact = np.abs(distances)
    over = radius > exact * (1 + 1e-9) + 1e-12
    allowed = int(binom.ppf(1 - 1e-6, len(radius), ALPHA))
    assert over.sum() <= allowed, (
        f"{int(over.sum())} of {len(radius)} radii exceed the exact distance (at most {allowed} allowed)"
    )
    tolerance = 4 / math.sqrt(n) / smoothed_lipschitz(SIGMA)
    worst = float(np.abs(radius - expected_radius(distances, n)).max())
    assert worst <= tolerance, f"radius off the closed form by {worst:.4f} > {tolerance:.4f}"


def test_the_constant_is_a_bound_and_tight_for_a_sign_function() -> None:
    s = np.linspace(-1, 1, 2001)
    margin = 2 * norm.cdf(s / SIGMA) - 1
    slopes = np.abs(np.diff(margin) / np.diff(s))
    assert slopes.max() <= smoothed_lipschitz(SIGMA) and slopes.max() == pytest.approx(
        smoothed_lipschitz(SIGMA), rel=1e-4
    )
    assert hoeffding_slack(1000, ALPHA) == pytest.approx(math.sqrt(2 * math.log(2000) / 1000))


def test_the_radius_is_sound_and_matches_the_closed_form() -> None:
    distances = torch.linspace(0.005, 0.3, 30) * torch.tensor([1.0, -1.0]).repeat(15)
    rows = certify(distances, n=4000)
    decided = ~rows["abstain"].to_numpy()
    assert (rows["prediction"].to_numpy()[decided] == (distances.numpy()[decided] < 0)).all()
    assert decided.sum() >= 20
    check_radii(rows["radius"].to_numpy(), distances.numpy(), n=4000)


@pytest.mark.parametrize(
    "patch, error",
    [
        (("hoeffding_slack", lambda n, alpha: 0.0), "exceed the exact distance"),  # no Monte Carlo slack
        (
            ("smoothed_lipschitz", lambda sigma: 1 / (sigma * math.sqrt(2 * math.pi))),
            "exceed the exact distance",
        ),  # constant halved
        (
            ("smoothed_lipschitz", lambda sigma: 2 * math.sqrt(2 / math.pi) / sigma),
            "off the closed form",
        ),  # doubled: sound, not tight
    ],
    ids=["no-slack", "lipschitz-halved", "lipschitz-doubled"],
)
def test_the_checks_catch_a_broken_certificate(monkeypatch: pytest.MonkeyPatch, patch, error: str) -> None:
    distances = torch.linspace(0.005, 0.3, 30) * torch.tensor([1.0, -1.0]).repeat(15)
    rows_ok = certify(distances, n=4000)
    monkeypatch.setattr(stats, *patch)
    rows = certify(distances, n=4000)
    assert rows["margin"].equals(rows_ok["margin"])  # the same samples: only the certificate differs
    with pytest.raises(AssertionError, match=error):
        check_radii(rows["radius"].to_numpy(), distances.numpy(), n=4000)


def test_same_noise_as_smoothing_and_x0_x1_never_perturbed() -> None:
    metric, item = sign_triplets(torch.tensor([0.1, -0.2]))
    ctx = Context(torch.device("cpu"), 7, "sign")
    metric.seen.clear()
    SmoothingEmbed(SmoothingEmbedOptions(n=40, noise_batch=16)).run(metric, [item], ctx)
    embed_inputs = torch.cat(metric.seen)
    metric.seen.clear()
    Smoothing(SmoothingOptions(n0=5, n=40, noise_batch=9)).run(metric, [item], ctx)
    smooth_inputs = torch.cat(metric.seen)
    assert len(embed_inputs) == 2 * 40
    # per triplet, smoothing embeds 5 selection then 40 estimation samples: the latter are smoothing-embed's
    assert torch.equal(embed_inputs[:40], smooth_inputs[5:45]) and torch.equal(embed_inputs[40:], smooth_inputs[50:90])


@pytest.mark.parametrize("option, value", [("sigma", "0"), ("n", "0"), ("alpha", "1"), ("noise_batch", "-1")])
def test_bad_options_are_one_line(option: str, value: str) -> None:
    with pytest.raises(BenchError) as info:
        build_options(SmoothingEmbedOptions, "smoothing-embed", {option: value})
    assert "\n" not in str(info.value) and f"--set smoothing-embed.{option}=" in str(info.value)


def test_end_to_end_for_cosine_metrics_only() -> None:
    result = bench.evaluate(
        metric=["pixel-l2", "lipsim-tiny"],
        dataset="sample",
        n=4,
        evaluations=["natural", "smoothing-embed"],
        plugins=["lipsim_bench.evaluations.smoothing_embed"],
        **{"smoothing-embed": {"n": 50}},
    )
    rows = result.triplets[result.triplets["evaluation"] == "smoothing-embed(sigma=0.25)"]
    assert set(rows["metric"]) == {"lipsim-tiny"} and len(rows.drop_duplicates("id")) == 4
    largest = (1 - hoeffding_slack(50, ALPHA)) / smoothed_lipschitz(SIGMA)
    assert rows["radius"].between(0, largest).all() and rows["margin"].abs().le(1).all()
    assert "smoothing-embed does not apply to pixel-l2" in result.markdown
