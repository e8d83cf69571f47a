"""PGD: bounds, strength on the toy classifier, first-success keeping, seeding."""

from __future__ import annotations

import pytest
import torch

from lipsim_bench.attacks import PGD, get_attack
from lipsim_bench.attacks.base import flat_norms
from lipsim_bench.attacks.pgd import _random_delta
from tests.attacks.test_apgd import Recorder, make_batch, make_mlp, one_thread  # noqa: F401 (fixture)


@pytest.mark.parametrize("norm,eps", [("l2", 0.5), ("linf", 8 / 255)])
def test_bounds_and_accuracy_drop(norm, eps):
    model = make_mlp(10)
    x, y = make_batch(model, n_wrong=3)
    x_adv = PGD(norm, eps)(model, x, y)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert flat_norms(x_adv - x, norm).max() <= eps + 1e-6  # float32 rounding of x + delta: ~1 ulp of x
    assert torch.equal(x_adv[:3], x[:3]), "initially misclassified examples are not attacked"
    robust = (model(x_adv).argmax(1) == y)[3:].float().mean()
    assert robust <= 0.6, f"PGD left {robust:.0%} of the toy classifier's correct examples robust"


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_random_start_inside_ball_and_image(norm):
    x = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    delta = _random_delta(x, norm, 0.3, torch.Generator().manual_seed(1))
    assert flat_norms(delta, norm).max() <= 0.3 + 1e-6
    assert (x + delta).min() >= 0 and (x + delta).max() <= 1
    assert flat_norms(delta, norm).min() > 0.1, "uniform in a 192-dimensional ball/box: far from the centre"


def test_first_success_is_kept():
    """Example 0 is misclassified at iterates 5 and 30, example 1 at iterate 30: PGD keeps the first."""
    model = make_mlp(10)
    x, y = make_batch(model)
    flips = {7: [0], 32: [0, 1]}  # call 1: clean prediction, call 2: start, call 2 + t: iterate t
    recorder = Recorder(model, flips)
    x_adv = PGD("l2", 0.1)(recorder, x, y)
    assert torch.equal(x_adv[0], recorder.calls[6][0])
    assert torch.equal(x_adv[1], recorder.calls[31][1])


def test_seeded_reproducible():
    model = make_mlp(10)
    x, y = make_batch(model)
    a = PGD("linf", 4 / 255, seed=1)(model, x, y)
    assert torch.equal(a, PGD("linf", 4 / 255, seed=1)(model, x, y))
    assert not torch.equal(a, PGD("linf", 4 / 255, seed=2)(model, x, y))
    no_start = PGD("linf", 4 / 255, random_start=False, seed=1)(model, x, y)
    assert torch.equal(no_start, PGD("linf", 4 / 255, random_start=False, seed=2)(model, x, y))


def test_restarts_only_add_successes():
    model = make_mlp(2)
    x, y = make_batch(model)
    one = PGD("l2", 1.0, restarts=1)(model, x, y)
    four = PGD("l2", 1.0, restarts=4)(model, x, y)
    fooled_one, fooled_four = model(one).argmax(1) != y, model(four).argmax(1) != y
    assert (fooled_four >= fooled_one).all() and fooled_four.sum() > fooled_one.sum()


def test_config_and_default_step():
    attack = PGD("l2", 0.5, steps=50)
    assert attack.step_size == pytest.approx(2.5 * 0.5 / 50)
    assert attack.config()["step_size"] == pytest.approx(0.025)
    assert set(attack.config()) == {
        "attack", "norm", "eps", "steps", "step_size", "restarts", "random_start", "loss", "seed",
    }  # fmt: skip
    assert get_attack("pgd") is PGD
