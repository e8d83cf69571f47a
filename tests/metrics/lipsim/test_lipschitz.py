"""Sound Lipschitz bounds: formula, tightness, every preset, the lower-bound sanity check, and teeth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lipsim_bench.metrics.lipsim import (
    FirstK,
    Flatten,
    PadChannels,
    PixelUnshuffle,
    Shift,
    SLLConv,
    SLLDense,
    SumPool,
    create_lipsim_network,
    iter_chain,
    jacobian_norm_lower_bound,
    layer_bounds,
    layer_lipschitz_bound,
    list_presets,
    network_lipschitz_bound,
    safe_inv,
)

TOL = 1e-5  # float32 t^-1 can put s^2 a few ulps above 1


def perturb_(module: nn.Module, seed: int, scale: float = 1.0) -> None:
    """Random, large changes to every parameter (q included) so tests do not only see the init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * (p.detach().abs().mean() + 0.1) * torch.randn(p.shape, generator=g, dtype=p.dtype))


# ----------------------------------------------------------------------------- deliberately broken layers


class Times12Dense(SLLDense):
    """Weights x12 after T was computed: T no longer dominates W^T W."""

    def __init__(self, features: int, inner: int) -> None:
        super().__init__(features, inner)
        self.register_buffer("frozen_t_inv", SLLDense.compute_t_inv(self).detach().clone())
        with torch.no_grad():
            self.weight.mul_(12.0)

    def compute_t_inv(self) -> torch.Tensor:
        return self.frozen_t_inv


class NoAbsDense(SLLDense):
    """AOL-style rescaling without the absolute value: negative Gram entries shrink (or flip) T."""

    def compute_t_inv(self) -> torch.Tensor:
        q, q_inv = torch.exp(self.q), torch.exp(-self.q)
        gram = self.weight @ self.weight.T
        return safe_inv((q_inv[:, None] * gram * q[None, :]).sum(1))


class Times12Conv(SLLConv):
    """Kernel x12 after T was computed."""

    def __init__(self, channels: int, inner: int, spatial_size: int) -> None:
        super().__init__(channels, inner, spatial_size=spatial_size)
        self.register_buffer("frozen_t_inv", SLLConv.compute_t_inv(self).detach().clone())
        with torch.no_grad():
            self.kernel.mul_(12.0)

    def compute_t_inv(self) -> torch.Tensor:
        return self.frozen_t_inv


class SkipsRescaling(SLLDense):
    """Overrides the forward (T^-1 skipped): the checker must refuse it, not trust compute_t_inv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - 2 * torch.relu(x @ self.weight.T + self.bias) @ self.weight


def explicit_jacobian_norm(layer: nn.Module, x: torch.Tensor) -> float:
    jac = torch.autograd.functional.jacobian(lambda z: layer(z[None])[0], x[0])
    return float(torch.linalg.matrix_norm(jac.reshape(x[0].numel(), x[0].numel()), ord=2))


# ----------------------------------------------------------------------------- the formula itself


@pytest.mark.parametrize("features,inner", [(10, 6), (5, 9)])
def test_dense_bound_equals_formula_with_explicit_svd(features: int, inner: int) -> None:
    torch.manual_seed(0)
    layer = Times12Dense(features, inner).double()
    w = layer.weight.detach().numpy().T  # (features, inner)
    t_inv = layer.compute_t_inv().numpy()
    s = np.linalg.svd(w * np.sqrt(t_inv)[None, :], compute_uv=False)[0]
    expected = max(1.0, 2 * s**2 - 1)
    assert expected > 10
    assert layer_lipschitz_bound(layer) == pytest.approx(expected, rel=1e-10)


def test_dense_bound_is_attained_when_every_unit_is_active() -> None:
    """With all ReLUs on, J = I - 2 A A^T and ||J|| = 2 s^2 - 1 exactly: the bound is tight, not vacuous."""
    torch.manual_seed(0)
    layer = Times12Dense(12, 5).double()
    with torch.no_grad():
        layer.bias.fill_(1e3)
    x = torch.randn(1, 12, dtype=torch.float64)
    upper = layer_lipschitz_bound(layer)
    assert explicit_jacobian_norm(layer, x) == pytest.approx(upper, rel=1e-9)
    assert jacobian_norm_lower_bound(layer, x, iters=200) == pytest.approx(upper, rel=1e-6)


@pytest.mark.parametrize("make", [lambda: Times12Dense(9, 7), lambda: NoAbsDense(9, 7), lambda: SLLDense(9, 7)])
def test_dense_bound_dominates_every_jacobian(make) -> None:
    torch.manual_seed(1)
    layer = make().double()
    perturb_(layer, seed=3)
    upper = layer_lipschitz_bound(layer)
    for seed in range(20):
        x = torch.randn(1, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 3
        assert explicit_jacobian_norm(layer, x) <= upper * (1 + 1e-9)


def test_conv_bound_equals_direct_per_frequency_svd() -> None:
    """The autocorrelation shortcut must agree with the SVD of the full kernel's DFT on the same grid."""
    torch.manual_seed(0)
    n = 5  # odd grid (7) without the frequency pi; zero-mean kernels have no DC: the max is elsewhere
    layer = Times12Conv(5, 3, spatial_size=n).double()
    with torch.no_grad():
        layer.kernel.sub_(layer.kernel.mean(dim=(2, 3), keepdim=True))
    grid = n + 2
    scaled = layer.kernel.detach() * layer.compute_t_inv().sqrt()[:, None, None, None]
    spectrum = torch.fft.fft2(scaled, s=(grid, grid)).permute(2, 3, 0, 1).reshape(-1, 3, 5)
    s2 = float(torch.linalg.matrix_norm(spectrum, ord=2).max() ** 2)
    assert layer_lipschitz_bound(layer) == pytest.approx(max(1.0, 2 * s2 - 1), rel=1e-10)


@pytest.mark.parametrize("n", [3, 6])
def test_conv_bound_dominates_the_zero_padded_operator(n: int) -> None:
    torch.manual_seed(0)
    layer = Times12Conv(3, 4, spatial_size=n).double()
    with torch.no_grad():
        layer.bias.fill_(1e3)  # all units active: ||J|| = 2 ||A_n||^2 - 1 on the finite grid
    x = torch.randn(1, 3, n, n, dtype=torch.float64)
    exact = explicit_jacobian_norm(layer, x)
    upper = layer_lipschitz_bound(layer)
    assert exact <= upper * (1 + 1e-9)
    assert exact > 0.5 * upper  # the circulant bound is not vacuous either


def test_conv_bound_needs_a_spatial_size() -> None:
    layer = SLLConv(3, 2)
    with pytest.raises(ValueError):
        layer_lipschitz_bound(layer)
    assert layer_lipschitz_bound(layer, spatial_size=5) <= 1 + TOL


def test_exact_constants_of_parameter_free_pieces() -> None:
    for piece in (PadChannels(4), SumPool(4), PixelUnshuffle(2), Flatten(), Shift(-0.5), FirstK(3), nn.Identity()):
        assert layer_lipschitz_bound(piece) == 1.0


# ----------------------------------------------------------------------------- teeth


@pytest.mark.parametrize(
    "make,x",
    [
        (lambda: Times12Dense(32, 16), lambda: torch.randn(2, 32)),
        (lambda: NoAbsDense(32, 16), lambda: torch.randn(2, 32)),
        (lambda: Times12Conv(4, 4, spatial_size=8), lambda: torch.randn(2, 4, 8, 8)),
    ],
)
def test_broken_layers_fail_the_check(make, x) -> None:
    torch.manual_seed(0)
    layer = make().double().eval()
    inputs = x().double()
    upper = layer_lipschitz_bound(layer)
    assert upper > 1.01
    assert jacobian_norm_lower_bound(layer, inputs, iters=50) <= upper * (1 + 1e-9)
    with torch.no_grad():
        layer.bias.fill_(1e3)  # every unit active: the expansion is certain to show at any input
    lower = jacobian_norm_lower_bound(layer, inputs, iters=50)
    assert lower > 1.01  # the layer really expands: the failure is not an artefact of the bound
    assert lower <= upper * (1 + 1e-9)


def test_hand_made_aol_without_abs_counterexample() -> None:
    """Columns e1 and -e1 + 0.1 e2: Gram row sums 0 and 0.01 without abs, 2 and 2.01 with it."""
    layer = NoAbsDense(2, 2).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.1]], dtype=torch.float64))
        layer.q.zero_()
    assert layer_lipschitz_bound(layer) > 100
    fixed = SLLDense(2, 2).double()
    fixed.load_state_dict(layer.state_dict())
    assert layer_lipschitz_bound(fixed) <= 1 + 1e-12


def test_a_broken_layer_breaks_the_network_bound() -> None:
    torch.manual_seed(0)
    net = create_lipsim_network("tiny")
    broken = Times12Conv(16, 16, spatial_size=32)
    net.convs[0] = broken
    assert network_lipschitz_bound(net) > 1.01


def test_unknown_or_overridden_modules_are_refused() -> None:
    with pytest.raises(TypeError):
        layer_lipschitz_bound(nn.ReLU())
    with pytest.raises(TypeError):
        layer_lipschitz_bound(nn.Linear(3, 3))
    with pytest.raises(TypeError):
        layer_lipschitz_bound(SkipsRescaling(4, 3))

    class DoublingShift(Shift):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * x + self.offset

    with pytest.raises(TypeError):
        layer_lipschitz_bound(DoublingShift(0.5))
    net = create_lipsim_network("tiny")
    net.linear.append(nn.Tanh())  # 1-Lipschitz in truth, but nothing may be assumed
    with pytest.raises(TypeError):
        network_lipschitz_bound(net)


# ----------------------------------------------------------------------------- presets


@pytest.fixture(scope="module")
def small_net() -> nn.Module:
    torch.manual_seed(0)
    return create_lipsim_network("small")


@pytest.mark.parametrize("perturbed", [False, True])
def test_every_tiny_layer_and_the_network_are_1_lipschitz(perturbed: bool) -> None:
    torch.manual_seed(0)
    net = create_lipsim_network("tiny")
    if perturbed:
        perturb_(net, seed=7, scale=3.0)
    bounds = layer_bounds(net)
    assert sum(name.startswith("convs.") for name, _ in bounds) >= 8 + 3
    for name, bound in bounds:
        assert bound <= 1 + TOL, name
    assert network_lipschitz_bound(net) <= 1 + TOL


def test_small_preset_network_bound_at_init(small_net: nn.Module) -> None:
    """All 27 SLL layers of the paper's network (about 7 s on 2 cores); perturbed weights: see below."""
    for name, bound in layer_bounds(small_net):
        assert bound <= 1 + TOL, name
    assert network_lipschitz_bound(small_net) <= 1 + TOL


def test_small_preset_sample_of_perturbed_layers_is_1_lipschitz(small_net: nn.Module) -> None:
    """Fast stand-in for the full perturbed small-preset check (marked slow): 2 dense + 3 conv layers."""
    layers = [small_net.linear[1], small_net.linear[7], small_net.convs[0], small_net.convs[9], small_net.convs[19]]
    for i, original in enumerate(layers):
        layer = type(original)(*layer_args(original))
        layer.load_state_dict(original.state_dict())
        perturb_(layer, seed=11 + i, scale=3.0)
        assert layer_lipschitz_bound(layer) <= 1 + TOL


def layer_args(layer: nn.Module) -> tuple:
    if isinstance(layer, SLLDense):
        return (layer.features, layer.inner)
    return (layer.channels, layer.inner, layer.kernel_size, layer.spatial_size)


@pytest.mark.slow
@pytest.mark.parametrize("preset", list_presets())
def test_every_layer_of_every_preset_full(preset: str) -> None:
    torch.manual_seed(0)
    net = create_lipsim_network(preset)
    for perturbed in (False, True):
        if perturbed:
            perturb_(net, seed=13, scale=3.0)
        for name, bound in layer_bounds(net):
            assert bound <= 1 + TOL, name
        assert network_lipschitz_bound(net) <= 1 + TOL


def test_small_preset_chain_is_fully_known(small_net: nn.Module) -> None:
    kinds = [type(m) for m in iter_chain(small_net)]
    assert kinds == [PadChannels] + [SLLConv] * 20 + [SumPool] * 2 + [Flatten] + [SLLDense] * 7 + [FirstK]


# ----------------------------------------------------------------------------- lower bound <= upper bound


def test_chain_walk_matches_the_forward() -> None:
    torch.manual_seed(0)
    net = create_lipsim_network("tiny").eval()
    x = torch.rand(2, 3, 64, 64)
    z = x
    for piece in iter_chain(net):
        z = piece(z)
    with torch.no_grad():
        torch.testing.assert_close(z, net(x))


@pytest.mark.parametrize("perturbed", [False, True])
def test_power_iteration_never_exceeds_the_upper_bound_tiny(perturbed: bool) -> None:
    torch.manual_seed(0)
    net = create_lipsim_network("tiny").eval()
    if perturbed:
        perturb_(net, seed=17, scale=3.0)
    upper = network_lipschitz_bound(net)
    x = torch.rand(1, 3, 64, 64)
    lower = jacobian_norm_lower_bound(net, x, iters=10)
    assert 0.05 < lower <= upper + TOL
    z = x
    for piece in iter_chain(net):  # each piece at the point the network feeds it
        if isinstance(piece, (SLLConv, SLLDense)):
            assert jacobian_norm_lower_bound(piece, z, iters=5) <= layer_lipschitz_bound(piece) + TOL
        with torch.no_grad():
            z = piece(z)


def test_power_iteration_through_the_cache_matches_uncached() -> None:
    """Frozen parameters: the eval cache is used inside torch.func transforms and changes nothing."""
    torch.manual_seed(0)
    net = create_lipsim_network("tiny").eval()
    x = torch.rand(1, 3, 64, 64)
    uncached = jacobian_norm_lower_bound(net, x, iters=5)
    net.requires_grad_(False)
    cached = jacobian_norm_lower_bound(net, x, iters=5)
    assert all(m.cache_is_valid for m in net.modules() if isinstance(m, (SLLConv, SLLDense)))
    assert cached == pytest.approx(uncached, rel=1e-5)
