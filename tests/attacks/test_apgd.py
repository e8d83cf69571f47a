"""APGD: equality with torchattacks 3.5.1 (= AutoAttack's APGD-CE), its teeth, and the contract.

Also the threat-model helpers of attacks/base.py, which every attack's output goes through.
The toy models and the call-counting models defined here are reused by test_pgd and test_external.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lipsim_bench.attacks.apgd as apgd_module
from lipsim_bench.attacks import APGD, AttackError, ThreatModel, check_adversarial, clamp_to_image, get_attack, project
from lipsim_bench.attacks.base import flat_norms, per_example_loss

torchattacks = pytest.importorskip("torchattacks")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: a second thread only adds contention on a busy machine (~3x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TA_NORM = {"l2": "L2", "linf": "Linf"}


# ----------------------------------------------------------------------------- toy models


def make_mlp(n_classes: int, seed: int = 1) -> nn.Module:
    """2-layer ReLU MLP on 3x8x8 inputs with fixed random weights (float32, eval mode)."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, n_classes))
    with torch.no_grad():
        for p in model.parameters():
            scale = p.shape[-1] ** -0.5 if p.dim() > 1 else 0.1
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return model.eval()


def make_batch(model: nn.Module, n: int = 24, seed: int = 2, n_wrong: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs in [0, 1] labelled with the model's own predictions (all correct), the first ``n_wrong`` flipped."""
    x = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    y[:n_wrong] = (y[:n_wrong] + 1) % logits.shape[1]
    return x, y


class Recorder:
    """A classifier that records each call's inputs; at the given call numbers (1-based) it negates
    the logits of the given examples, i.e. it misclassifies them at exactly those iterates."""

    def __init__(self, model: nn.Module, flips: dict[int, list[int]] | None = None) -> None:
        self.model, self.flips, self.calls = model, flips or {}, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        self.calls.append(x.detach().clone())
        rows = self.flips.get(len(self.calls), [])
        if rows:
            sign = torch.ones(out.shape[0], 1, dtype=out.dtype)
            sign[rows] = -1.0
            out = out * sign
        return out


class RecorderModule(nn.Module):
    """``Recorder`` as an nn.Module, for torchattacks."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.__dict__["recorder"] = recorder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.recorder(x)


# Cases where the toy model is partly robust (a mix of fooled / not fooled examples at 100 steps).
CASES = [(2, "l2", 1.0), (2, "linf", 24 / 255), (10, "l2", 0.5), (10, "linf", 8 / 255)]


def torchattacks_single_run(model, x, y, norm, eps, steps=100):
    """torchattacks' own ``attack_single_run`` from the global RNG seeded with 0 (as its perturb does)."""
    attack = torchattacks.APGD(model, norm=TA_NORM[norm], eps=eps, steps=steps, n_restarts=1, loss="ce", seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return attack.attack_single_run(x, y)


def run_state(attack: APGD, model, x, y):
    return attack.single_run(model, x, y, torch.Generator().manual_seed(0))


def assert_state_equals_torchattacks(state, reference) -> None:
    x_best, acc, loss_best, x_best_adv = reference
    assert torch.equal(state.x_best, x_best), f"best points differ by {(state.x_best - x_best).abs().max():.3g}"
    assert torch.equal(state.loss_best, loss_best)
    assert torch.equal(state.robust, acc)
    assert torch.equal(state.x_best_adv, x_best_adv)


# ----------------------------------------------------------------------------- faithfulness


def test_checkpoints_for_100_steps_are_autoattacks():
    schedule = apgd_module._checkpoint_schedule(100)
    assert [i + 1 for i, _ in schedule] == [22, 41, 57, 70, 80, 87, 93, 99]
    assert [k for _, k in schedule] == [22, 19, 16, 13, 10, 7, 6, 6]


@pytest.mark.parametrize("steps", [1, 5, 10, 37, 50, 100, 250])
def test_checkpoints_match_autoattacks_counter(steps):
    """Independent formulation: AutoAttack's counter that checks when it reaches k, then shrinks k."""
    k, k_min, dec = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    counter, expected = 0, []
    for i in range(steps):
        counter += 1
        if counter == k:
            expected.append((i, k))
            counter, k = 0, max(k - dec, k_min)
    assert apgd_module._checkpoint_schedule(steps) == expected


@pytest.mark.parametrize("n_classes,norm,eps", CASES)
def test_every_iterate_state_equals_torchattacks(n_classes, norm, eps):
    """Best point, best loss, fooled flags and returned points of one run: bit-identical."""
    model = make_mlp(n_classes)
    x, y = make_batch(model)
    state = run_state(APGD(norm, eps), model, x, y)
    reference = torchattacks_single_run(model, x, y, norm, eps)
    assert_state_equals_torchattacks(state, reference)
    assert 0 < int(state.robust.sum()) < len(y)  # a mix, so both branches are compared


@pytest.mark.parametrize("restarts", [1, 3])
@pytest.mark.parametrize("n_classes,norm,eps", CASES)
def test_output_equals_torchattacks(n_classes, norm, eps, restarts):
    model = make_mlp(n_classes)
    x, y = make_batch(model, n_wrong=2)
    ours = APGD(norm, eps, restarts=restarts)(model, x, y)
    with torch.random.fork_rng(devices=[]):
        ref = torchattacks.APGD(model, norm=TA_NORM[norm], eps=eps, steps=100, n_restarts=restarts, seed=0)(x, y)
    assert torch.equal(ours, ref), f"max difference {(ours - ref).abs().max():.3g}"


def _shift_checkpoint(j: int, by: int):
    original = apgd_module._checkpoint_schedule

    def altered(steps: int):
        return [(i + by if n == j else i, k) for n, (i, k) in enumerate(original(steps))]

    return altered


@pytest.mark.parametrize(
    "change",
    ["momentum=0.7", "rho=0.7", "first checkpoint +1", "fourth checkpoint +1", "last checkpoint dropped"],
)
@pytest.mark.parametrize("n_classes,norm,eps", [(2, "l2", 1.0), (10, "linf", 8 / 255)])
def test_teeth_an_altered_schedule_is_detected(monkeypatch, change, n_classes, norm, eps):
    """The equality above is not vacuous: each of these changes moves the best points measurably."""
    kwargs = {}
    if change.startswith(("momentum", "rho")):
        key, value = change.split("=")
        kwargs[key] = float(value)
    elif change == "last checkpoint dropped":
        original = apgd_module._checkpoint_schedule
        monkeypatch.setattr(apgd_module, "_checkpoint_schedule", lambda steps: original(steps)[:-1])
    else:
        monkeypatch.setattr(apgd_module, "_checkpoint_schedule", _shift_checkpoint(0 if "first" in change else 3, 1))
    model = make_mlp(n_classes)
    x, y = make_batch(model)
    state = run_state(APGD(norm, eps, **kwargs), model, x, y)
    x_best = torchattacks_single_run(model, x, y, norm, eps)[0]
    assert (state.x_best - x_best).abs().max() > 1e-4


# ----------------------------------------------------------------------------- contract


@pytest.mark.parametrize("n_classes,norm,eps", CASES)
def test_bounds_and_unchanged_examples(n_classes, norm, eps):
    model = make_mlp(n_classes)
    x, y = make_batch(model, n_wrong=3)
    x_adv = APGD(norm, eps)(model, x, y)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert flat_norms(x_adv - x, norm).max() <= eps + 1e-6  # float32 rounding of x + delta: ~1 ulp of x
    fooled = model(x_adv).argmax(1) != y
    unchanged = (x_adv == x).flatten(1).all(1)
    assert unchanged[:3].all(), "initially misclassified examples are not attacked"
    assert torch.equal(unchanged[3:], ~fooled[3:]), "exactly the examples never fooled are returned unchanged"


def test_margin_loss_attack_fools_and_respects_bounds():
    model = make_mlp(10)
    x, y = make_batch(model)
    x_adv = APGD("linf", 8 / 255, loss="margin")(model, x, y)
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6
    assert (model(x_adv).argmax(1) != y).sum() >= 8


def test_success_is_kept_even_if_later_iterates_are_classified_correctly():
    """A success is never lost. As AutoAttack's x_best_adv, the LAST misclassified iterate is returned
    (example 0 is misclassified at iterates 7 and 37 only, example 1 at iterate 7 only)."""
    model = make_mlp(10)
    x, y = make_batch(model)
    eps = 0.2
    flips = {10: [0, 1], 40: [0]}  # call 1: clean prediction, call 2: random start, call 3 + i: iterate i
    ours = Recorder(model, flips)
    x_adv = APGD("l2", eps)(ours, x, y)
    assert torch.equal(x_adv[0], ours.calls[39][0]) and torch.equal(x_adv[1], ours.calls[9][1])
    honest = APGD("l2", eps)(model, x, y)
    assert torch.equal(x_adv[2:], honest[2:]), "the other examples' runs are untouched"
    assert torch.equal(honest[:2], x[:2]), "examples 0 and 1 are not fooled by the honest model"
    theirs = Recorder(model, flips)
    with torch.random.fork_rng(devices=[]):
        ref = torchattacks.APGD(RecorderModule(theirs), norm="L2", eps=eps, steps=100, seed=0)(x, y)
    assert torch.equal(x_adv, ref)


def test_returned_point_is_adversarial_iff_some_iterate_was():
    model = make_mlp(10)
    x, y = make_batch(model)
    recorder = Recorder(model)
    x_adv = APGD("linf", 8 / 255)(recorder, x, y)
    with torch.no_grad():
        ever = torch.stack([model(c).argmax(1) != y for c in recorder.calls[1:]]).any(0)
        assert torch.equal(model(x_adv).argmax(1) != y, ever)


def test_restarts_never_make_the_result_worse():
    model = make_mlp(10)
    x, y = make_batch(model)
    one = APGD("linf", 8 / 255, restarts=1)(model, x, y)
    four = APGD("linf", 8 / 255, restarts=4)(model, x, y)
    fooled_one, fooled_four = model(one).argmax(1) != y, model(four).argmax(1) != y
    assert (fooled_four >= fooled_one).all()
    assert fooled_four.sum() > fooled_one.sum(), "with this setting later restarts do add successes"
    assert torch.equal(four[fooled_one], one[fooled_one]), "restart 1 is the same run"


def test_seeded_and_leaves_global_rng_alone():
    model = make_mlp(10)
    x, y = make_batch(model)
    state = torch.get_rng_state()
    a = APGD("l2", 0.5, seed=3)(model, x, y)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, APGD("l2", 0.5, seed=3)(model, x, y))
    assert not torch.equal(a, APGD("l2", 0.5, seed=4)(model, x, y))


def test_config_and_registry():
    attack = APGD("l2", 0.5, restarts=2)
    assert attack.config() == {
        "attack": "apgd", "norm": "l2", "eps": 0.5, "steps": 100, "restarts": 2, "loss": "ce",
        "rho": 0.75, "seed": 0, "momentum": 0.75, "early_stop": False,
    }  # fmt: skip
    assert get_attack("apgd") is APGD
    with pytest.raises(ValueError):
        APGD("l2", 0.5, loss="dlr")


# ----------------------------------------------------------------------------- base helpers


@pytest.mark.parametrize("eps", [-0.1, math.nan, math.inf, "1"])
def test_threat_model_rejects_bad_eps(eps):
    with pytest.raises(ValueError, match="eps"):
        ThreatModel("l2", eps)


def test_threat_model_rejects_bad_norm():
    with pytest.raises(ValueError, match="norm"):
        ThreatModel("l1", 0.5)


def test_project_and_clamp_to_image():
    delta = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(flat_norms(project(delta, ThreatModel("l2", 0.5)), "l2"), torch.full((5,), 0.5))
    small = delta * 1e-3
    assert torch.equal(project(small, ThreatModel("l2", 0.5)), small)
    assert project(delta, ThreatModel("linf", 0.1)).abs().max() == pytest.approx(0.1)
    x = torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    moved = x + clamp_to_image(x, delta)
    assert moved.min() >= 0 and moved.max() <= 1


def test_check_adversarial_names_the_problem():
    x = torch.full((2, 3, 4, 4), 0.5)
    threat = ThreatModel("l2", 0.1)
    check_adversarial(x, x + 0.01, threat)  # norm 0.01 * sqrt(48) = 0.069
    with pytest.raises(AttackError, match=r"l2 norm exceeds eps=0.1 by 0.1"):
        check_adversarial(x, x + 0.03, threat)  # norm 0.208
    with pytest.raises(AttackError, match="outside"):
        check_adversarial(x, x.clone().index_fill_(1, torch.tensor([0]), 1.5), ThreatModel("linf", 1.0))
    with pytest.raises(AttackError, match="NaN"):
        check_adversarial(x, x.clone().fill_(math.nan), threat)


def test_attack_refuses_inputs_outside_the_image_range():
    model = make_mlp(2)
    with pytest.raises(AttackError, match="outside"):
        APGD("l2", 0.5)(model, torch.full((2, 3, 8, 8), 1.5), torch.zeros(2, dtype=torch.long))


def test_margin_loss_is_positive_exactly_when_misclassified():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    y = torch.tensor([0, 0])
    assert torch.equal(per_example_loss(logits, y, "margin"), torch.tensor([-1.0, 3.0]))


@pytest.mark.parametrize("norm, eps", [("l2", 0.5), ("linf", 8 / 255)])
def test_early_stop_fools_the_same_examples_and_keeps_robust_outputs(norm, eps):
    """Dropping fooled examples must not change anyone else's trajectory (all APGD state is per example)."""
    model = make_mlp(10)
    x, y = make_batch(model, n=24)
    full = APGD(norm, eps, steps=100)(model, x, y)
    early = APGD(norm, eps, steps=100, early_stop=True)(model, x, y)
    with torch.no_grad():
        fooled_full, fooled_early = model(full).argmax(1) != y, model(early).argmax(1) != y
    assert fooled_full.any() and (~fooled_full).any()
    assert torch.equal(fooled_full, fooled_early)
    assert torch.equal(full[~fooled_full], early[~fooled_early])


def test_early_stop_with_per_example_model_state():
    """A classifier with per-example state (restrict) stays aligned when examples drop out."""

    class Shifted(nn.Module):
        def __init__(self, base, shift):
            super().__init__()
            self.base, self.shift = base, shift

        def restrict(self, index):
            return Shifted(self.base, self.shift[index])

        def forward(self, z):
            assert len(z) == len(self.shift)
            return self.base(z) + self.shift

    base = make_mlp(2)
    x, y = make_batch(base, n=24)
    shift = torch.zeros(24, 2)
    model = Shifted(base, shift)
    full = APGD("l2", 0.5, steps=50)(model, x, y)
    early = APGD("l2", 0.5, steps=50, early_stop=True)(model, x, y)
    with torch.no_grad():
        assert torch.equal(model(full).argmax(1) != y, model(early).argmax(1) != y)
