"""SLL layers against the formula written out with dense matrices, the other pieces, and the eval cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lipsim_bench.metrics.lipsim import (
    FirstK,
    Flatten,
    PadChannels,
    PixelUnshuffle,
    Shift,
    SLLConv,
    SLLDense,
    SumPool,
    safe_inv,
    set_cache_enabled,
)


def perturb_(module: torch.nn.Module, seed: int, scale: float = 1.0) -> None:
    """Random, large changes to every parameter (q included) so tests do not only see the init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * (p.detach().abs().mean() + 0.1) * torch.randn(p.shape, generator=g, dtype=p.dtype))


# ----------------------------------------------------------------------------- formula references (numpy)


def dense_reference(layer: SLLDense, x: np.ndarray) -> np.ndarray:
    """h(x) = x - 2 W T^-1 relu(W^T x + b) with W = weight^T and t_i = sum_j |W^T W|_ij q_j / q_i."""
    w = layer.weight.detach().double().numpy().T  # (features, inner)
    b = layer.bias.detach().double().numpy().reshape(-1)
    q = np.exp(layer.q.detach().double().numpy())
    gram = w.T @ w
    inner = gram.shape[0]
    t = np.array([sum(abs(gram[i, j]) * q[j] / q[i] for j in range(inner)) for i in range(inner)])
    t_inv = np.where(t == 0, 0.0, 1.0 / np.where(t == 0, 1.0, t))
    pre = x @ w + b  # rows: W^T x + b
    return x - 2.0 * (np.maximum(pre, 0.0) * t_inv) @ w.T


def conv_matrix(kernel: np.ndarray, n: int) -> np.ndarray:
    """Unrolled zero-padded cross-correlation (PyTorch conv2d, padding k//2): (inner*n*n, channels*n*n)."""
    inner, channels, k, _ = kernel.shape
    pad = k // 2
    m = np.zeros((inner, n, n, channels, n, n))
    for i in range(inner):
        for y in range(n):
            for x in range(n):
                for u in range(k):
                    for v in range(k):
                        yy, xx = y + u - pad, x + v - pad
                        if 0 <= yy < n and 0 <= xx < n:
                            m[i, y, x, :, yy, xx] += kernel[i, :, u, v]
    return m.reshape(inner * n * n, channels * n * n)


def conv_t_reference(kernel: np.ndarray) -> np.ndarray:
    """t_i = sum_j sum_offsets |sum_{c,u} K_ic(u) K_jc(u + d)| -- Gershgorin with q = 1 (the official quirk)."""
    inner, channels, k, _ = kernel.shape
    t = np.zeros(inner)
    for i in range(inner):
        for j in range(inner):
            for dy in range(-(k - 1), k):
                for dx in range(-(k - 1), k):
                    acc = 0.0
                    for u in range(k):
                        for v in range(k):
                            if 0 <= u + dy < k and 0 <= v + dx < k:
                                acc += float(kernel[i, :, u, v] @ kernel[j, :, u + dy, v + dx])
                    t[i] += abs(acc)
    return t


def conv_reference(layer: SLLConv, x: np.ndarray) -> np.ndarray:
    kernel = layer.kernel.detach().double().numpy()
    n = x.shape[-1]
    m = conv_matrix(kernel, n)
    t = conv_t_reference(kernel)
    t_inv = np.repeat(np.where(t == 0, 0.0, 1.0 / np.where(t == 0, 1.0, t)), n * n)
    b = np.repeat(layer.bias.detach().double().numpy().reshape(-1), n * n)
    flat = x.reshape(x.shape[0], -1)
    pre = flat @ m.T + b
    out = flat - 2.0 * (np.maximum(pre, 0.0) * t_inv) @ m
    return out.reshape(x.shape)


# ----------------------------------------------------------------------------- formula tests


@pytest.mark.parametrize("features,inner", [(7, 5), (6, 11), (1, 3)])
def test_sll_dense_matches_formula_float64(features: int, inner: int) -> None:
    torch.manual_seed(0)
    layer = SLLDense(features, inner).double().train()
    perturb_(layer, seed=1)
    x = torch.randn(9, features, dtype=torch.float64)
    expected = dense_reference(layer, x.numpy())
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    layer.eval()
    with torch.no_grad():
        np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_sll_dense_q_matters() -> None:
    torch.manual_seed(0)
    layer = SLLDense(6, 4).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    before = layer(x).detach()
    with torch.no_grad():
        layer.q.add_(torch.tensor([2.0, -1.0, 0.5, 0.0], dtype=torch.float64))
    assert not torch.allclose(layer(x).detach(), before)


@pytest.mark.parametrize("channels,inner,n", [(3, 2, 5), (2, 4, 4)])
def test_sll_conv_matches_unrolled_matrix_float64(channels: int, inner: int, n: int) -> None:
    torch.manual_seed(0)
    layer = SLLConv(channels, inner).double().train()
    perturb_(layer, seed=2)
    with torch.no_grad():
        layer.q.mul_(3.0)  # large q: the reference ignores q entirely (official quirk)
    x = torch.randn(3, channels, n, n, dtype=torch.float64)
    expected = conv_reference(layer, x.numpy())
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_sll_conv_official_quirk_q_has_no_effect() -> None:
    torch.manual_seed(0)
    layer = SLLConv(4, 3)
    x = torch.randn(2, 4, 6, 6)
    before = layer(x).detach()
    t_before = layer.compute_t_inv().detach()
    with torch.no_grad():
        layer.q.copy_(torch.tensor([3.0, -2.0, 0.7]))
    torch.testing.assert_close(layer.compute_t_inv().detach(), t_before, rtol=1e-6, atol=0)
    torch.testing.assert_close(layer(x).detach(), before, rtol=1e-6, atol=1e-6)


def test_float32_outputs_match_the_official_arithmetic_order() -> None:
    """Official order: t * relu(.) first, then the raw transposed weight, then x2. Ours folds 2 t into W."""
    torch.manual_seed(0)
    conv = SLLConv(45, 5).eval()
    x = torch.rand(2, 45, 16, 16)
    t = conv.compute_t_inv().reshape(1, -1, 1, 1)
    hidden = t * torch.relu(torch.nn.functional.conv2d(x, conv.kernel, padding=1) + conv.bias)
    expected = x - 2 * torch.nn.functional.conv_transpose2d(hidden, conv.kernel, padding=1)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), expected.detach(), rtol=0, atol=1e-5)
    dense = SLLDense(300, 64).eval()
    z = torch.randn(4, 300)
    hidden = dense.compute_t_inv() * torch.relu(z @ dense.weight.T + dense.bias)
    expected = z - 2 * hidden @ dense.weight
    with torch.no_grad():
        torch.testing.assert_close(dense(z), expected.detach(), rtol=0, atol=1e-5)


def test_parameter_names_and_shapes_match_official_layers() -> None:
    dense = SLLDense(8820, 16)
    assert {k: tuple(v.shape) for k, v in dense.state_dict().items()} == {
        "weight": (16, 8820),
        "bias": (1, 16),
        "q": (16,),
    }
    conv = SLLConv(45, 5)
    assert {k: tuple(v.shape) for k, v in conv.state_dict().items()} == {
        "kernel": (5, 45, 3, 3),
        "bias": (1, 5, 1, 1),
        "q": (5,),
    }


def test_safe_inverse_maps_zero_to_zero_with_finite_gradients() -> None:
    x = torch.tensor([0.0, 2.0, -4.0], requires_grad=True)
    y = safe_inv(x)
    assert y.tolist() == [0.0, 0.5, -0.25]
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_dead_unit_is_dropped_not_amplified() -> None:
    torch.manual_seed(0)
    layer = SLLDense(5, 3).double()
    with torch.no_grad():
        layer.weight[1].zero_()
    assert layer.compute_t_inv()[1].item() == 0.0
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    np.testing.assert_allclose(out.detach().numpy(), dense_reference(layer, x.detach().numpy()), rtol=1e-10)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


# ----------------------------------------------------------------------------- other pieces


def test_pad_channels_is_an_isometry() -> None:
    x = torch.randn(2, 3, 4, 4)
    y = PadChannels(7)(x)
    assert y.shape == (2, 7, 4, 4)
    assert torch.equal(y[:, :3], x) and not y[:, 3:].any()
    with pytest.raises(ValueError):
        PadChannels(2)(x)


def test_sum_pool_is_window_sum_over_k_and_tight() -> None:
    x = torch.randn(2, 3, 8, 8)
    y = SumPool(4)(x)
    expected = x.reshape(2, 3, 2, 4, 2, 4).sum(dim=(3, 5)) / 4
    torch.testing.assert_close(y, expected)
    const = torch.ones(1, 1, 4, 4)  # constant window: ||pool(x)|| == ||x|| (constant exactly 1)
    torch.testing.assert_close(SumPool(4)(const).norm(), const.norm())


def test_pixel_unshuffle_is_a_permutation() -> None:
    x = torch.randn(2, 3, 6, 6)
    y = PixelUnshuffle(2)(x)
    assert y.shape == (2, 12, 3, 3)
    assert torch.equal(y.flatten().sort().values, x.flatten().sort().values)


def test_shift_flatten_first_k() -> None:
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(Shift(-0.5)(x), x - 0.5)
    assert Flatten()(x).shape == (2, 48)
    z = torch.randn(2, 10)
    assert torch.equal(FirstK(4)(z), z[:, :4])
    with pytest.raises(ValueError):
        FirstK(11)(z)


# ----------------------------------------------------------------------------- eval-mode cache


def make_layer(kind: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if kind == "dense":
        return SLLDense(40, 24), torch.randn(6, 40)
    return SLLConv(6, 4, spatial_size=8), torch.randn(3, 6, 8, 8)


def uncached(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    set_cache_enabled(layer, False)
    with torch.no_grad():
        out = layer(x)
    set_cache_enabled(layer, True)
    return out


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_cached_equals_uncached_and_train_mode(kind: str) -> None:
    layer, x = make_layer(kind)
    train_out = layer.train()(x).detach()
    layer.eval()
    assert not layer.cache_is_valid
    with torch.no_grad():
        first = layer(x)
        assert layer.cache_is_valid
        second = layer(x)
    torch.testing.assert_close(first, uncached(layer, x), rtol=0, atol=1e-5)
    torch.testing.assert_close(second, train_out, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_in_place_edit_invalidates_cache(kind: str) -> None:
    layer, x = make_layer(kind)
    layer.eval()
    with torch.no_grad():
        before = layer(x)
        weight = layer.weight if kind == "dense" else layer.kernel
        weight.mul_(0.5)
        assert not layer.cache_is_valid
        after = layer(x)
        layer.q.add_(1.0)
        after_q = layer(x)
    assert (after - before).abs().max() > 1e-3
    torch.testing.assert_close(after, uncached(layer, x), rtol=0, atol=1e-6)
    torch.testing.assert_close(after_q, uncached(layer, x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adam-foreach-off"])
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_optimizer_step_invalidates_cache(kind: str, optimizer: str) -> None:
    layer, x = make_layer(kind)
    layer.eval()
    with torch.no_grad():
        before = layer(x)
    if optimizer == "sgd":
        opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    else:
        opt = torch.optim.Adam(layer.parameters(), lr=0.1, foreach=optimizer == "adam")
    layer(x).pow(2).sum().backward()  # eval mode, grad on: must take the uncached path (parameter grads)
    opt.step()
    with torch.no_grad():
        after = layer(x)
    assert (after - before).abs().max() > 1e-4
    torch.testing.assert_close(after, uncached(layer, x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_load_state_dict_invalidates_cache(kind: str) -> None:
    layer, x = make_layer(kind)
    other, _ = make_layer(kind)
    perturb_(other, seed=5)
    layer.eval()
    other.eval()
    with torch.no_grad():
        layer(x)
        layer.load_state_dict(other.state_dict())
        torch.testing.assert_close(layer(x), other(x), rtol=0, atol=1e-6)


def test_dtype_move_and_train_switch_invalidate_cache() -> None:
    layer, x = make_layer("dense")
    layer.eval()
    with torch.no_grad():
        layer(x)
        layer.double()
        assert not layer.cache_is_valid
        assert layer(x.double()).dtype == torch.float64
    layer.train()
    assert layer._cache is None


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_parameter_gradients_in_eval_mode_are_exact(kind: str) -> None:
    layer, x = make_layer(kind)
    layer.train()
    layer(x).pow(2).sum().backward()
    train_grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    layer.eval()
    with torch.no_grad():
        layer(x)  # builds the cache; it must not be used while parameter grads are possible
    layer(x).pow(2).sum().backward()
    for g_train, p in zip(train_grads, layer.parameters()):
        torch.testing.assert_close(p.grad, g_train, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_frozen_parameters_use_cache_with_input_gradients(kind: str) -> None:
    layer, x = make_layer(kind)
    x_ref = x.clone().requires_grad_(True)
    layer.train()(x_ref).pow(2).sum().backward()
    layer.eval().requires_grad_(False)
    with torch.inference_mode():
        layer(x)  # cache built under inference mode must stay usable outside it
    assert layer.cache_is_valid
    x_in = x.clone().requires_grad_(True)
    layer(x_in).pow(2).sum().backward()
    assert layer.cache_is_valid
    torch.testing.assert_close(x_in.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
