"""torchattacks APGD and foolbox minimum-norm attacks behind the house contract."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from lipsim_bench.attacks import APGD, FoolboxMinNorm, TorchattacksAPGD, get_attack
from lipsim_bench.attacks.base import flat_norms
from tests.attacks.test_apgd import make_batch, make_mlp, one_thread  # noqa: F401 (fixture)

pytest.importorskip("foolbox")


class Linear2(nn.Module):
    """Two logits ``[0, w.x + b]``: the exact minimal l2 radius is ``|w.x + b| / ||w||_2`` (l_inf:
    ``/ ||w||_1``) as long as that ball stays inside [0, 1]."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.w = torch.randn(192, generator=torch.Generator().manual_seed(seed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)

    def setup(self, n: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs in [0.3, 0.7] with the bias centring them on the boundary; their exact z values."""
        x = 0.3 + 0.4 * torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
        self.b = -float((x.flatten(1) @ self.w).mean())
        z = x.flatten(1) @ self.w + self.b
        return x, (z > 0).long(), z


@pytest.fixture
def linear():
    model = Linear2().eval()
    x, y, z = model.setup()
    return model, x, y, z


# ----------------------------------------------------------------------------- torchattacks


@pytest.mark.parametrize("norm,eps", [("l2", 0.5), ("linf", 8 / 255)])
def test_torchattacks_wrapper_equals_our_apgd_and_keeps_rng(norm, eps):
    model = make_mlp(10)
    x, y = make_batch(model, n_wrong=2)
    state = torch.get_rng_state()
    theirs = TorchattacksAPGD(norm, eps)(model, x, y)
    assert torch.equal(torch.get_rng_state(), state), "torchattacks' reseeding is undone"
    assert torch.equal(theirs, APGD(norm, eps)(model, x, y))


def test_torchattacks_wrapper_defaults_and_plain_callables():
    attack = TorchattacksAPGD("l2", 0.5)
    assert attack.config()["steps"] == 100, "AutoAttack's 100, not torchattacks' default 10"
    assert get_attack("torchattacks-apgd") is TorchattacksAPGD
    model = make_mlp(2)
    x, y = make_batch(model)
    x_adv = attack(lambda inputs: model(inputs), x, y)
    assert flat_norms(x_adv - x, "l2").max() <= 0.5 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(x_adv, TorchattacksAPGD("l2", 0.5)(model, x, y))


# ----------------------------------------------------------------------------- foolbox


@pytest.mark.parametrize(
    "norm,method,dual,tight",
    [("l2", "ddn", 2, True), ("linf", "fmn", 1, True), ("l2", "fmn", 2, False)],
)
def test_minimal_radius_never_below_exact(linear, norm, method, dual, tight):
    model, x, y, z = linear
    exact = z.abs() / model.w.norm(p=dual)
    assert exact.max() < 0.3, "balls stay inside [0, 1], so the unconstrained radius is exact"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the l2-FMN warning
        radii = FoolboxMinNorm(norm, 0.1, method=method).radii(model, x, y)
    assert torch.isfinite(radii).all()
    assert (radii >= exact - 1e-4).all(), f"below the exact radius by {(exact - radii).max():.3g}"
    if tight:  # foolbox 3.3.4's l2 FMN is not (see FoolboxMinNorm's docstring)
        assert (radii <= exact * 1.02 + 0.01).all(), f"worst ratio {(radii / exact).max():.3g}"


def test_l2_fmn_warns_and_default_methods():
    with pytest.warns(UserWarning, match="does not project"):
        FoolboxMinNorm("l2", 0.1, method="fmn")
    assert FoolboxMinNorm("l2", 0.1).method == "ddn"
    assert FoolboxMinNorm("linf", 0.1).method == "fmn"
    with pytest.raises(ValueError):
        FoolboxMinNorm("linf", 0.1, method="ddn")
    assert get_attack("fmn") is FoolboxMinNorm


def test_radius_zero_when_misclassified_and_inf_when_failed():
    def constant(x: torch.Tensor) -> torch.Tensor:  # a plain callable, unfoolable: class 0 everywhere
        return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], 1) + 0 * x.flatten(1).sum(1, keepdim=True)

    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 0, 1, 1])
    radii = FoolboxMinNorm("l2", 0.5, steps=10).radii(constant, x, y)
    assert radii.tolist() == [float("inf"), float("inf"), 0.0, 0.0]


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_call_respects_threat_model_and_fools_inside_eps(linear, norm):
    model, x, y, z = linear
    eps = 0.1 if norm == "l2" else 0.003
    attack = FoolboxMinNorm(norm, eps)
    x_adv = attack(model, x, y)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert flat_norms(x_adv - x, norm).max() <= eps + 1e-6  # float32 rounding of x + delta: ~1 ulp of x
    radii = attack.radii(model, x, y)
    fooled = model(x_adv).argmax(1) != y
    assert torch.equal(fooled, radii <= eps)
    assert 0 < int(fooled.sum()) < len(y)
