"""Square: equality with torchattacks 3.5.1 (= AutoAttack's Square), its teeth, restrict, queries, seeds."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import lipsim_bench.attacks.square as square_module
from lipsim_bench.attacks import AttackError, Square, get_attack
from lipsim_bench.attacks.base import flat_norms
from lipsim_bench.evaluations.twoafc import TwoAFCClassifier
from lipsim_bench.metrics import PerceptualMetric
from tests.attacks.test_apgd import one_thread  # noqa: F401 (fixture)

torchattacks = pytest.importorskip("torchattacks")

TA_NORM = {"l2": "L2", "linf": "Linf"}
SIZE, N, QUERIES = 16, 24, 200
# The toy MLP is partly robust here (a mix of fooled / robust examples, and restarts add successes).
CASES = [(2, "l2", 1.0), (2, "linf", 16 / 255), (10, "l2", 1.0), (10, "linf", 16 / 255)]


def make_mlp(n_classes: int, seed: int = 1) -> nn.Module:
    """2-layer ReLU MLP on 3x16x16 inputs with fixed random weights (float32, eval mode)."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 32), nn.ReLU(), nn.Linear(32, n_classes))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (p.shape[-1] ** -0.5 if p.dim() > 1 else 0.1))
    return model.eval()


def make_batch(model: nn.Module, n_wrong: int = 0) -> tuple[Tensor, Tensor]:
    """Inputs in [0, 1] labelled with the model's predictions, the first ``n_wrong`` labels changed."""
    x = torch.rand(N, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    y[:n_wrong] = (y[:n_wrong] + 1) % logits.shape[1]
    return x, y


def torchattacks_square(model, x, y, norm, eps, **kwargs) -> Tensor:
    attack = torchattacks.Square(model, norm=TA_NORM[norm], eps=eps, seed=0, **kwargs)
    with torch.random.fork_rng(devices=[]):
        return attack(x, y)


def fooled(model, x_adv: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


# ----------------------------------------------------------------------------- faithfulness


@pytest.mark.parametrize("n_queries", [1, 37, 200, 5000])
def test_p_schedule_is_torchattacks(n_queries):
    theirs = torchattacks.Square(make_mlp(2), n_queries=n_queries, p_init=0.3)
    assert [square_module._p_selection(i, 0.3, n_queries) for i in range(n_queries)] == [
        theirs.p_selection(i) for i in range(n_queries)
    ]


@pytest.mark.parametrize("n_classes,norm,eps", CASES)
def test_single_run_equals_torchattacks(n_classes, norm, eps):
    """Queries per example and best points of one run: bit-identical."""
    model = make_mlp(n_classes)
    x, y = make_batch(model)
    queries, x_best = Square(norm, eps, n_queries=QUERIES).single_run(model, x, y, torch.Generator().manual_seed(0))
    attack = torchattacks.Square(model, norm=TA_NORM[norm], eps=eps, n_queries=QUERIES)
    attack.init_hyperparam(x)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ref_queries, ref_best = attack.attack_single_run(x, y)
    assert torch.equal(queries, ref_queries) and torch.equal(x_best, ref_best)
    assert queries.min() < QUERIES and queries.max() == QUERIES + 1  # some fooled early, some never


@pytest.mark.parametrize("restarts,loss", [(1, "margin"), (3, "margin"), (1, "ce")])
@pytest.mark.parametrize("n_classes,norm,eps", CASES)
def test_output_equals_torchattacks(n_classes, norm, eps, restarts, loss):
    model = make_mlp(n_classes)
    x, y = make_batch(model, n_wrong=2)
    ours = Square(norm, eps, n_queries=QUERIES, restarts=restarts, loss=loss)(model, x, y)
    ref = torchattacks_square(model, x, y, norm, eps, n_queries=QUERIES, n_restarts=restarts, loss=loss)
    assert torch.equal(ours, ref), f"max difference {(ours - ref).abs().max():.3g}"
    is_fooled = fooled(model, ours, y)
    assert 2 < int(is_fooled.sum()) < N, "a mix of fooled and robust examples, so both branches are compared"


def _shifted_schedule(it: int, p_init: float, n_queries: int, rescale: bool = True) -> float:
    """AutoAttack's schedule with its third step at 300 instead of 200 (iterations 5 and 6 of 200 change)."""
    return p_init / 2 ** sum(int(it / n_queries * 10000) > t for t in (10, 50, 300, 500, 1000, 2000, 4000, 6000, 8000))


@pytest.mark.parametrize("change", ["p schedule's third step at 300", "p_init=0.7", "no rescaled schedule"])
@pytest.mark.parametrize("norm,eps", [("l2", 1.0), ("linf", 16 / 255)])
def test_teeth_an_altered_schedule_is_detected(monkeypatch, change, norm, eps):
    """The equality above is not vacuous: each change moves the output."""
    kwargs = {"p_init": 0.7} if change == "p_init=0.7" else {}
    if change == "no rescaled schedule":
        kwargs = {"rescale_schedule": False}
    if change.startswith("p schedule"):
        monkeypatch.setattr(square_module, "_p_selection", _shifted_schedule)
    model = make_mlp(10)
    x, y = make_batch(model)
    ours = Square(norm, eps, n_queries=QUERIES, **kwargs)(model, x, y)
    assert not torch.equal(ours, torchattacks_square(model, x, y, norm, eps, n_queries=QUERIES))


# ----------------------------------------------------------------------------- per-example state


class ToyMetric(PerceptualMetric):
    """A fixed random tanh projection of the pixels, 1 - cos: a tiny 2AFC metric."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.proj = nn.Parameter(torch.randn(3 * SIZE * SIZE, 16, generator=gen) / 20, requires_grad=False)

    def embed(self, x: Tensor) -> Tensor:
        return torch.tanh(x.flatten(1) @ self.proj)


def twoafc_setting() -> tuple[TwoAFCClassifier, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(4)
    ref = torch.rand(N, 3, SIZE, SIZE, generator=gen)
    x0 = (ref + 0.3 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
    x1 = (ref + 0.3 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
    classifier = TwoAFCClassifier.from_images(ToyMetric().eval(), x0, x1)
    with torch.no_grad():
        return classifier, ref, classifier(ref).argmax(1)


def stateless_twin(classifier: TwoAFCClassifier, refs: Tensor):
    """The same classifier as a pure function of its input: each row is matched to its triplet by the
    nearest clean reference (every perturbed row stays far closer to its own than to any other)."""

    def model(x: Tensor) -> Tensor:
        owner = torch.cdist(x.flatten(1), refs.flatten(1)).argmin(1)
        return classifier.restrict(owner)(x)

    return model


@pytest.mark.parametrize("norm,eps", [("l2", 1.0), ("linf", 8 / 255)])
def test_restricted_calls_stay_aligned_on_a_twoafc_classifier(norm, eps):
    """Square on the cached-embedding classifier equals Square on its stateless twin, call for call."""
    classifier, ref, y = twoafc_setting()
    attack = Square(norm, eps, n_queries=QUERIES, restarts=2)
    ours = attack(classifier, ref, y)
    twin = attack(stateless_twin(classifier, ref), ref, y)
    assert torch.equal(ours, twin)
    is_fooled = fooled(classifier, ours, y)
    assert 0 < int(is_fooled.sum()) < N


class Counting(nn.Module):
    """A stateless model that counts, per original example, the forwards it takes part in, and checks
    (through ``restrict``) that every row it gets lies in the threat model of that example."""

    def __init__(self, base: nn.Module, x: Tensor, norm: str, eps: float, counts=None, rows=None) -> None:
        super().__init__()
        self.base, self.x, self.norm, self.eps = base, x, norm, eps
        self.counts = torch.zeros(len(x), dtype=torch.long) if counts is None else counts
        self.rows = torch.arange(len(x)) if rows is None else rows

    def restrict(self, index: Tensor) -> Counting:
        return Counting(self.base, self.x, self.norm, self.eps, self.counts, self.rows[index])

    def forward(self, z: Tensor) -> Tensor:
        assert len(z) == len(self.rows)
        assert (flat_norms(z - self.x[self.rows], self.norm) <= self.eps + 1e-5).all(), "a row of another example"
        self.counts[self.rows] += 1
        return self.base(z)


@pytest.mark.parametrize("restarts", [1, 2])
@pytest.mark.parametrize("norm,eps", [("l2", 1.0), ("linf", 16 / 255)])
def test_threat_model_and_query_budget(norm, eps, restarts):
    """Per example: 1 clean forward, then per restart 1 start + at most n_queries + 1 final check;
    robust examples use exactly that, fooled ones at most that, wrong ones only the clean forward."""
    model = make_mlp(10)
    x, y = make_batch(model, n_wrong=3)
    counting = Counting(model, x, norm, eps)
    x_adv = Square(norm, eps, n_queries=QUERIES, restarts=restarts)(counting, x, y)
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and flat_norms(x_adv - x, norm).max() <= eps + 1e-6
    is_fooled = fooled(model, x_adv, y)
    unchanged = (x_adv == x).flatten(1).all(1)
    assert unchanged[:3].all() and (counting.counts[:3] == 1).all(), "misclassified: not attacked"
    assert torch.equal(unchanged[3:], ~is_fooled[3:])
    budget = 1 + restarts * (QUERIES + 2)
    assert (counting.counts[3:][~is_fooled[3:]] == budget).all()
    assert (counting.counts[3:][is_fooled[3:]] <= budget).all()
    assert (counting.counts[3:][is_fooled[3:]] < budget).sum() >= 5, "the fooled stop querying"


# ----------------------------------------------------------------------------- contract


def test_seeded_and_leaves_global_rng_alone():
    model = make_mlp(10)
    x, y = make_batch(model)
    state = torch.get_rng_state()
    a = Square("l2", 1.0, n_queries=100, seed=3)(model, x, y)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, Square("l2", 1.0, n_queries=100, seed=3)(model, x, y))
    assert not torch.equal(a, Square("l2", 1.0, n_queries=100, seed=4)(model, x, y))


def test_config_registry_and_bad_input():
    attack = Square("linf", 0.1, n_queries=300)
    assert attack.config() == {
        "attack": "square", "norm": "linf", "eps": 0.1, "n_queries": 300, "p_init": 0.8, "restarts": 1,
        "loss": "margin", "seed": 0, "rescale_schedule": True,
    }  # fmt: skip
    assert get_attack("square") is Square
    for bad in ({"loss": "dlr"}, {"n_queries": 0}, {"p_init": 0.0}, {"restarts": 0}):
        with pytest.raises(ValueError):
            Square("l2", 0.5, **bad)
    model = make_mlp(2)
    with pytest.raises(AttackError, match="square images"):
        Square("l2", 0.5)(model, torch.rand(2, 3, SIZE, 8), torch.zeros(2, dtype=torch.long))
