"""``smoothing-attack``: PGD-EOT on the smoothed decision, judged by PREDICT, checks every smoothing certificate.

On a half-space decision (identity embedding, l2 distance) the smoothed decision is the base one and the exact
radius is the distance t to the hyperplane: no confident flip can happen within t, PGD-EOT should find one soon
beyond it, and the empirical score must never fall below the certified one. A certifier that doubles sigma is
caught by the run's own check (and by the score comparison, once that check is switched off).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binomtest
from torch import Tensor

import lipsim_bench as bench
import lipsim_bench.evaluations.smoothing as smoothing_module
import lipsim_bench.evaluations.smoothing_attack as attack_module
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import get_evaluation
from lipsim_bench.evaluations.base import Context, EmbeddedBatch, Kind
from lipsim_bench.evaluations.options import build_options
from lipsim_bench.evaluations.smoothing import Smoothing
from lipsim_bench.evaluations.smoothing_attack import SmoothingAttack, SmoothingAttackOptions, score_pairs
from lipsim_bench.evaluations.smoothing_stats import ABSTAIN, allowed_violations, certify_counts, predict_counts
from tests.bench.evaluations.test_smoothing import HalfSpace, embedded

EPS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
OPTIONS = dict(sigma=0.25, n0=100, n=1000, alpha=0.001, m=8, steps=10, eps=EPS)
CPU = torch.device("cpu")


def half_space_items(t: Tensor, seed: int) -> tuple[HalfSpace, EmbeddedBatch]:
    """Triplets whose reference (near grey, so x + delta stays in [0, 1]) lies at signed distance t from the bisector."""
    gen = torch.Generator().manual_seed(seed)
    n = len(t)
    ref = 0.5 + 0.1 * (torch.rand(n, 3, 4, 4, generator=gen, dtype=torch.float64) - 0.5)
    w = torch.nn.functional.normalize(torch.randn(n, 48, generator=gen, dtype=torch.float64), dim=1).view(n, 3, 4, 4)
    middle = ref - t.double().view(-1, 1, 1, 1) * w
    metric = HalfSpace()
    return metric, embedded(metric, ref, middle - 0.5 * w, middle + 0.5 * w, (t > 0).double())


def signed_distances() -> Tensor:
    return torch.linspace(0.15, 0.35, 24) * torch.where(torch.arange(24) % 2 == 0, 1.0, -1.0)


def run_attack(smoothing: bool = False) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """(smoothing rows or None, smoothing-attack rows) on the half-space triplets, same options and seed."""
    metric, item = half_space_items(signed_distances(), seed=0)
    o = SmoothingAttackOptions(**OPTIONS)  # type: ignore[arg-type]
    ctx = Context(CPU, 0, "toy")
    return Smoothing(o.certificate()).run(metric, [item], ctx) if smoothing else None, SmoothingAttack(o).run(
        metric, [item], ctx
    )


@pytest.fixture(scope="module")
def sound() -> tuple[pd.DataFrame, pd.DataFrame]:
    smoothed, attacked = run_attack(smoothing=True)
    assert smoothed is not None
    return smoothed, attacked


def certified_scores(rows: pd.DataFrame) -> dict[float, float]:
    return {round(float(e), 9): 100 * float(part["agreement"].mean()) for e, part in rows.groupby("eps") if e > 0}


def empirical_scores(rows: pd.DataFrame) -> dict[float, float]:
    return {round(float(e), 9): 100 * float(part["agreement"].mean()) for e, part in rows.groupby("eps")}


def below_certified(attacked: pd.DataFrame) -> list[float]:
    """Radii where the empirical score is below the certified one (a broken certificate or scoring); the certified
    scores recomputed from the rows' radii as ``smoothing`` scores them (checked against its rows below)."""
    return [eps for eps, empirical, certified in score_pairs(attacked) if empirical < certified - 1e-9]


# -- statistics -------------------------------------------------------------------------------------------


def test_predict_is_cohens_two_sided_binomial_test() -> None:
    assert (
        binomtest(62, 100, 0.5).pvalue < 0.05 < binomtest(60, 100, 0.5).pvalue
    )  # the closed forms the cases sit between
    counts = np.array([[62, 38], [60, 40], [38, 62], [0, 0], [5, 0]])
    assert predict_counts(counts, 0.05).tolist() == [0, ABSTAIN, 1, ABSTAIN, ABSTAIN]  # 5 of 5: p = 0.0625
    assert predict_counts(np.array([[5, 0]]), 0.1).tolist() == [0]
    assert allowed_violations(0, 0.01, 1e-6) == 0 and allowed_violations(1000, 0.0, 1e-6) == 0
    assert allowed_violations(100, 0.01, 1e-6) == 8  # P[Binomial(100, 0.01) > 8] = 7.6e-8 < 1e-6 <= P[... > 7] = 8.2e-6


# -- the half space -----------------------------------------------------------------------------------------


def test_the_certificate_is_smoothings_and_no_flip_lands_inside_a_radius(
    sound: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    smoothed, attacked = sound
    assert (
        SmoothingAttack.kind is Kind.ATTACK
        and not SmoothingAttack.per_threat
        and get_evaluation("smoothing-attack") is SmoothingAttack
    )
    first = smoothed[smoothed["eps"] == 0].set_index("id")
    for _eps, part in attacked.groupby("eps"):
        part = part.set_index("id")
        for column in ("radius", "prediction", "p_lower"):  # the same certificate, noise included
            np.testing.assert_array_equal(part[column].to_numpy(), first.loc[part.index, column].to_numpy())
    assert not attacked["violated"].any() and not attacked["abstain"].any()
    exact = signed_distances().abs().numpy()
    last = attacked[attacked["eps"] == max(EPS)].reset_index(drop=True)
    assert last["changed"].all()
    # the closed form: a confident flip needs ||delta|| beyond the hyperplane; PGD-EOT flips by the second radius past it
    assert (last["delta_norm"].to_numpy() > exact).all() and (last["delta_norm"].to_numpy() < exact + 0.2 + 1e-9).all()
    assert (last["adv_prediction"] == 1 - last["prediction"]).all()


def test_empirical_scores_are_never_below_the_certified_ones(sound: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    smoothed, attacked = sound
    assert below_certified(attacked) == []
    empirical, certified = empirical_scores(attacked), certified_scores(smoothed)
    assert empirical[0.2] > certified[0.2] and empirical[0.6] == 0.0  # not vacuous: the attack wins at large radii
    for eps, own_empirical, own_certified in score_pairs(
        attacked
    ):  # the footer's pairs are the two evaluations' scores
        assert own_empirical == pytest.approx(empirical[round(eps, 9)]) and own_certified == pytest.approx(
            certified[round(eps, 9)]
        )
    assert (
        "empirical vs certified smoothed score: eps 0.1: 100.0 vs 100.0"
        in SmoothingAttack(SmoothingAttackOptions(**OPTIONS)).notes("toy", attacked)[0]
    )


def doubled_sigma(guess: np.ndarray, count: np.ndarray, n: int, sigma: float, alpha: float):
    """Broken: radii computed with twice the noise's sigma."""
    return certify_counts(guess, count, n, 2 * sigma, alpha)


def test_a_certifier_that_doubles_sigma_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smoothing_module, "certify_counts", doubled_sigma)
    with pytest.raises(BenchError) as info:
        run_attack()
    message = str(info.value)
    assert (
        "\n" not in message
        and "smoothing certificate violated" in message
        and "'toy'" in message
        and "the smoothing certifier is broken" in message
    )
    monkeypatch.setattr(attack_module, "check_violations", lambda *args: None)  # the scores alone show it too
    _, attacked = run_attack()
    assert attacked["violated"].sum() > 10 and below_certified(attacked)


def test_rows_do_not_depend_on_batching_and_change_with_the_seed() -> None:
    metric, item = half_space_items(signed_distances()[:6], seed=1)
    options = SmoothingAttackOptions(**{**OPTIONS, "n": 200, "n0": 20, "eps": (0.2, 0.4)})  # type: ignore[arg-type]
    whole = SmoothingAttack(options).run(metric, [item], Context(CPU, 0, "toy"))
    halves = [
        EmbeddedBatch(
            {k: v[s] for k, v in item.batch.items()}, item.e_ref[s], item.e0[s], item.e1[s], item.d0[s], item.d1[s]
        )
        for s in (slice(0, 3), slice(3, 6))
    ]
    split = SmoothingAttack(SmoothingAttackOptions(**{**vars(options), "noise_batch": 16})).run(
        metric, halves, Context(CPU, 0, "toy-b")
    )  # another name: noise seeded per metric would fail
    columns = ["id", "eps", "agreement", "radius", "delta_norm", "adv_prediction", "d0", "d1"]
    ordered = lambda f: f[columns].sort_values(["eps", "id"]).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(ordered(whole), ordered(split))
    other = SmoothingAttack(options).run(metric, [item], Context(CPU, 1, "toy"))
    assert not np.array_equal(ordered(other)["d0"].to_numpy(), ordered(whole)["d0"].to_numpy())


@pytest.mark.parametrize(
    "option, value, fix",
    [
        ("m", "0", "a positive integer"),
        ("steps", "0", "from 1 to 100000"),
        ("step_size", "-1", "a positive number"),
        ("eps", "0,0.5", "positive l2 radii"),
        ("sigma", "0", "a positive number"),
    ],
)
def test_bad_options_are_one_line(option: str, value: str, fix: str) -> None:
    with pytest.raises(BenchError) as info:
        build_options(SmoothingAttackOptions, "smoothing-attack", {option: value})
    message = str(info.value)
    assert "\n" not in message and f"smoothing-attack.{option}=" in message and fix in message


# -- end to end ---------------------------------------------------------------------------------------------


def test_pixel_l2_end_to_end_on_the_sample_world(tmp_path: Path) -> None:
    """pixel-l2 is a half-space too: through the runner, the table gets empirical columns and the footer the comparison."""
    shared = {"n": 100, "n0": 20, "eps": (0.25, 1.0)}
    result = bench.evaluate(
        metric="pixel-l2",
        dataset="sample",
        n=6,
        evaluations=["natural", "smoothing", "smoothing-attack"],
        smoothing=shared,
        **{"smoothing-attack": {**shared, "steps": 5, "m": 4}},
        batch_size=3,
        out=tmp_path / "run",
    )
    scores = result.scores.set_index(["evaluation", "eps"])["score"]
    attack, certified = "smoothing-attack(sigma=0.25)", "smoothing(sigma=0.25)"
    assert scores[(attack, 0.25)] >= scores[(certified, 0.25)] and scores[(attack, 1.0)] >= scores[(certified, 1.0)]
    assert "empirical vs certified smoothed score" in result.markdown
    rows = result.triplets[result.triplets["evaluation"] == attack]
    assert (
        len(rows) == 12
        and not rows["violated"].astype(bool).any()
        and "flipped" not in rows.dropna(axis=1, how="all").columns
    )
