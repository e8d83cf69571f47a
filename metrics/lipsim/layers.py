"""1-Lipschitz building blocks of LipSim (l2 -> l2), written from the SLL formula.

SLL layer (SDP-based Lipschitz Layer, Araujo et al. 2023), with ``W`` of shape (features, inner):

    h(x) = x - 2 W T^-1 relu(W^T x + b),   T = diag(t),   t_i = sum_j |W^T W|_ij q_j / q_i,   q = exp(q_param)

``T >= W^T W`` (Gershgorin with the positive scaling ``q``), hence ``||W T^-1/2|| <= 1`` and the layer is
1-Lipschitz (see :mod:`lipsim_bench.metrics.lipsim.lipschitz` for the proof and the checker). Parameter names and
shapes follow the official LipSim code (``SDPBasedLipschitzLinearLayer`` / ``SDPBasedLipschitzConvLayer``
in SaraGhazanfari/lipsim, ``lipsim/core/models/l2_lip/layers.py``) so official state dicts load as is:
the stored matrix is ``W^T`` (``weight`` of shape (inner, features); ``kernel`` of shape
(inner, channels, k, k)), ``bias`` is (1, inner) / (1, inner, 1, 1) and ``q`` is (inner,).

T depends on the weights only, so in eval mode each SLL layer caches its T^-1-rescaled weight
``2 T^-1 W^T`` and reuses it; the cache is keyed on every parameter's storage pointer and version
counter (bumped by in-place updates: optimizer steps, ``load_state_dict``, ``p.mul_()`` under no_grad).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FirstK",
    "Flatten",
    "PadChannels",
    "PixelUnshuffle",
    "SLLConv",
    "SLLDense",
    "Shift",
    "SumPool",
    "safe_inv",
    "set_cache_enabled",
]


def safe_inv(x: Tensor) -> Tensor:
    """``1 / x`` with ``0 -> 0``, finite gradients included.

    A unit whose column of W is zero has t = 0 and contributes nothing; mapping 1/0 to 0 keeps that exact.
    An epsilon in the denominator would only be sound if it made T *larger*: 1/(t + eps) with eps > 0 is
    fine, 1/(|q| + eps)-style tricks that shrink T are not, so none is used.
    """
    zero = x == 0
    inv = 1.0 / torch.where(zero, torch.ones_like(x), x)
    return torch.where(zero, torch.zeros_like(x), inv)


class _RescaleCache(nn.Module):
    """Caches ``2 T^-1 W^T`` in eval mode and recomputes it whenever a parameter may have changed.

    The cache is used only when no gradient w.r.t. the parameters can be asked for (eval mode and either
    grad mode off or every parameter of the layer frozen): a cached, detached weight would silently drop
    parameter gradients. Attacks that need input gradients get the cache by freezing the parameters
    (``net.requires_grad_(False)``). Writing through ``p.data`` bypasses version counters: call
    :meth:`invalidate_cache` after such writes.
    """

    cache_enabled: bool

    def __init__(self) -> None:
        super().__init__()
        self.cache_enabled = True
        self._cache: Tensor | None = None
        self._cache_key: tuple | None = None

    def compute_t_inv(self) -> Tensor:
        """Diagonal of T^-1 (shape (inner,)), computed from the current parameters."""
        raise NotImplementedError

    def _rescale(self, t_inv: Tensor) -> Tensor:
        """``2 T^-1 W^T`` in the stored layout of the weight."""
        raise NotImplementedError

    def _param_key(self) -> tuple:
        return tuple(
            (p.data_ptr(), p._version, p.dtype, p.device, tuple(p.shape)) for p in self.parameters(recurse=False)
        )

    def _cache_usable(self) -> bool:
        if self.training or not self.cache_enabled:
            return False
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters(recurse=False)):
            return False
        return True

    def rescaled_weight(self) -> Tensor:
        """``2 T^-1 W^T``: from the cache when allowed and still valid, else freshly (with autograd)."""
        if not self._cache_usable():
            return self._rescale(self.compute_t_inv())
        key = self._param_key()
        if self._cache is None or self._cache_key != key:
            # inference_mode(False): a cache built under inference_mode must stay usable outside it.
            with torch.inference_mode(False), torch.no_grad():
                self._cache = self._rescale(self.compute_t_inv()).detach()
            self._cache_key = key
        return self._cache

    @property
    def cache_is_valid(self) -> bool:
        """Whether a cached weight exists and matches the current parameters."""
        return self._cache is not None and self._cache_key == self._param_key()

    def invalidate_cache(self) -> None:
        """Drop the cached weight (needed only after writes through ``p.data``)."""
        self._cache = None
        self._cache_key = None

    def train(self, mode: bool = True) -> _RescaleCache:
        """Switching train/eval drops the cache: training changes weights, eval rebuilds it lazily."""
        self.invalidate_cache()
        return super().train(mode)


class SLLDense(_RescaleCache):
    """Dense SLL layer ``x -> x - 2 W T^-1 relu(W^T x + b)`` on (N, features); 1-Lipschitz.

    Keys/shapes as the official ``SDPBasedLipschitzLinearLayer``: ``weight`` (inner, features) = W^T,
    ``bias`` (1, inner), ``q`` (inner,).
    """

    def __init__(self, features: int, inner: int) -> None:
        super().__init__()
        self.features = features
        self.inner = inner
        self.weight = nn.Parameter(torch.empty(inner, features))
        self.bias = nn.Parameter(torch.empty(1, inner))
        self.q = nn.Parameter(torch.empty(inner))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official initialisation: Xavier-normal weight, uniform(+-1/sqrt(fan_in)) bias, standard-normal q."""
        nn.init.xavier_normal_(self.weight)
        bound = self.features**-0.5
        nn.init.uniform_(self.bias, -bound, bound)
        nn.init.normal_(self.q)
        self.invalidate_cache()

    def compute_t_inv(self) -> Tensor:
        """``1 / t`` with ``t_i = sum_j |W^T W|_ij q_j / q_i`` (Gershgorin bound rescaled by q)."""
        q = torch.exp(self.q)
        q_inv = torch.exp(-self.q)
        gram = self.weight @ self.weight.T  # W^T W, (inner, inner)
        t = (q_inv[:, None] * gram * q[None, :]).abs().sum(1)
        return safe_inv(t)

    def _rescale(self, t_inv: Tensor) -> Tensor:
        return (2.0 * t_inv)[:, None] * self.weight

    def forward(self, x: Tensor) -> Tensor:
        hidden = F.linear(x, self.weight).add_(self.bias).relu_()
        return torch.addmm(x, hidden, self.rescaled_weight(), alpha=-1.0)  # x - hidden @ (2 T^-1 W^T)

    def extra_repr(self) -> str:
        return f"features={self.features}, inner={self.inner}"


class SLLConv(_RescaleCache):
    """Convolutional SLL layer ``x -> x - 2 K^T T^-1 relu(K x + b)`` (zero padding k // 2); 1-Lipschitz.

    ``K x`` is ``conv2d(x, kernel)`` and ``K^T`` its adjoint ``conv_transpose2d``. ``t`` is the Gershgorin row
    sum of the inner-channel operator ``K K^T``: ``|conv2d(kernel, kernel, padding=k-1)|`` summed over the
    second channel axis and the offsets (an upper bound also for the zero-padded finite grid).

    Official quirk, reproduced exactly: the official layer multiplies ``|ktk|`` by ``exp(-q)`` and ``exp(q)``
    both reshaped to (-1, 1, 1, 1), i.e. on the *same* axis, so they cancel and ``q`` has no effect (the
    layer is the Gershgorin bound with q = 1: still 1-Lipschitz). The same arithmetic is done here so that
    official checkpoints give official outputs. ``spatial_size`` (the input's H = W) is recorded by the
    network for the Lipschitz checker; the forward accepts any size.
    """

    def __init__(self, channels: int, inner: int, kernel_size: int = 3, spatial_size: int | None = None) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for a same-size convolution, got {kernel_size}")
        self.channels = channels
        self.inner = inner
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2
        self.spatial_size = spatial_size
        self.kernel = nn.Parameter(torch.empty(inner, channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(1, inner, 1, 1))
        self.q = nn.Parameter(torch.empty(inner))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official initialisation: Xavier-normal kernel, uniform(+-1/sqrt(fan_in)) bias, standard-normal q."""
        nn.init.xavier_normal_(self.kernel)
        bound = (self.channels * self.kernel_size**2) ** -0.5
        nn.init.uniform_(self.bias, -bound, bound)
        nn.init.normal_(self.q)
        self.invalidate_cache()

    def compute_t_inv(self) -> Tensor:
        """``1 / t``, ``t_i = sum_{j, offsets} |(K K^T)_ij|`` -- q cancels exactly as in the official code."""
        ktk = F.conv2d(self.kernel, self.kernel, padding=self.kernel_size - 1).abs()
        q = torch.exp(self.q).reshape(-1, 1, 1, 1)
        q_inv = torch.exp(-self.q).reshape(-1, 1, 1, 1)  # same axis as q: the official quirk
        t = (q_inv * ktk * q).sum((1, 2, 3))
        return safe_inv(t)

    def _rescale(self, t_inv: Tensor) -> Tensor:
        return (2.0 * t_inv)[:, None, None, None] * self.kernel

    def forward(self, x: Tensor) -> Tensor:
        # channels_last: oneDNN convolutions run about twice as fast on CPU; values are unchanged.
        x = x.contiguous(memory_format=torch.channels_last)
        hidden = F.conv2d(x, self.kernel, padding=self.padding).add_(self.bias).relu_()
        update = F.conv_transpose2d(hidden, self.rescaled_weight(), padding=self.padding)
        return update.neg_().add_(x)  # x - update, in place: avoids a large allocation (autograd-safe)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, inner={self.inner}, kernel_size={self.kernel_size}, "
            f"spatial_size={self.spatial_size}"
        )


class PadChannels(nn.Module):
    """Zero-pad (N, C, H, W) to ``out_channels`` channels: an isometry (norms are unchanged)."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        extra = self.out_channels - x.shape[1]
        if extra < 0:
            raise ValueError(f"cannot pad {x.shape[1]} channels down to {self.out_channels}")
        return F.pad(x, (0, 0, 0, 0, 0, extra)) if extra else x

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}"


class SumPool(nn.Module):
    """k x k, stride-k pooling returning ``window sum / k``: l2-Lipschitz constant exactly 1.

    By Cauchy-Schwarz ``|sum of k^2 values| <= k ||window||``; equality for a constant window. This is the
    official ``nn.AvgPool2d(k, divisor_override=k)``; a plain average (divisor k^2) would be 1/k-Lipschitz
    and shrink every certified radius by k.
    """

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.k, stride=self.k, divisor_override=self.k)

    def extra_repr(self) -> str:
        return f"k={self.k}"


class PixelUnshuffle(nn.PixelUnshuffle):
    """Space-to-depth (a permutation of coordinates, hence an isometry)."""


class Flatten(nn.Flatten):
    """(N, ...) -> (N, prod(...)): a reshape, an isometry."""

    def __init__(self) -> None:
        super().__init__(start_dim=1, end_dim=-1)


class Shift(nn.Module):
    """``x + offset`` (e.g. offset -0.5 centres [0, 1] images): a translation, Lipschitz constant 1."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = float(offset)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.offset

    def extra_repr(self) -> str:
        return f"offset={self.offset}"


class FirstK(nn.Module):
    """Keep the first ``k`` coordinates of (N, D): a coordinate projection, Lipschitz constant 1."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] < self.k:
            raise ValueError(f"FirstK({self.k}) got only {x.shape[1]} coordinates")
        return x[:, : self.k]

    def extra_repr(self) -> str:
        return f"k={self.k}"


def set_cache_enabled(module: nn.Module, enabled: bool) -> None:
    """Turn the eval-mode weight cache of every SLL layer inside ``module`` on or off."""
    for m in module.modules():
        if isinstance(m, _RescaleCache):
            m.cache_enabled = enabled
            if not enabled:
                m.invalidate_cache()
