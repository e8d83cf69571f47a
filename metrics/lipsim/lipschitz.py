"""Sound l2 Lipschitz upper bounds for LipSim networks (float64), plus a power-iteration lower bound.

Per SLL layer ``h(x) = x - 2 W T^-1 relu(W^T x + b)`` (W of shape features x inner, T^-1 = diag(t_inv)):

* h is piecewise affine; on every piece its Jacobian is ``J = I - 2 W T^-1 D W^T`` with D diagonal, entries
  in {0, 1} (the Clarke Jacobians at kinks have D in [0, 1]). Integrating J along a segment gives
  ``||h(x) - h(y)|| <= sup_D ||J|| ||x - y||``.
* If t_inv >= 0, let ``A = W T^-1/2`` and ``s = ||A||``. Then ``J = I - 2 A D A^T`` is symmetric and
  ``0 <= A D A^T <= A A^T``, whose eigenvalues lie in [0, s^2]; so the eigenvalues of J lie in
  [1 - 2 s^2, 1] and ``||J|| <= max(1, 2 s^2 - 1)``. With the SLL choice of T (Gershgorin: T >= W^T W),
  ``A^T A = T^-1/2 W^T W T^-1/2 <= I``, i.e. s <= 1 and the bound is exactly 1.
* If some t_inv are negative (a broken parameterisation), split T^-1 = P - M with P, M >= 0 diagonal; then
  ``J = (I - 2 W P^1/2 D P^1/2 W^T) + 2 W M^1/2 D M^1/2 W^T`` and
  ``||J|| <= max(1, 2 s_P^2 - 1) + 2 s_M^2`` with s_P = ||W P^1/2||, s_M = ||W M^1/2||.

Dense layers: s^2 is the largest eigenvalue of the smaller Gram matrix (eigvalsh, float64).
Conv layers: W is ``conv_transpose2d`` with zero padding on an n x n grid, a compression (restriction of
inputs and outputs) of the circular convolution on an N x N grid, N = n + k - 1 (no wrap-around reaches the
n x n window). Its norm is therefore at most the circulant's, ``max_w ||K_hat(w) T^-1/2||`` over the N x N
DFT frequencies: a sound upper bound, also for every input size <= n. ``t_inv`` is taken from the layer
itself (in its own dtype), so the bound describes the map the layer really computes.

Other pieces have exact constants (1). Unknown modules raise: nothing is assumed 1-Lipschitz.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lipsim_bench.metrics.lipsim.layers import FirstK, PadChannels, Shift, SLLConv, SLLDense, SumPool
from lipsim_bench.metrics.lipsim.network import LipSimNetwork

__all__ = [
    "iter_chain",
    "jacobian_norm_lower_bound",
    "layer_bounds",
    "layer_lipschitz_bound",
    "network_lipschitz_bound",
    "sll_bound",
]

#: Parameter-free pieces and their exact l2 Lipschitz constants.
_EXACT_CONSTANTS: tuple[tuple[type[nn.Module], float], ...] = (
    (PadChannels, 1.0),  # zero padding: isometry
    (SumPool, 1.0),  # non-overlapping window sum / k: Cauchy-Schwarz, equality on constant windows
    (nn.PixelUnshuffle, 1.0),  # permutation
    (nn.PixelShuffle, 1.0),  # permutation
    (nn.Flatten, 1.0),  # reshape
    (Shift, 1.0),  # translation
    (FirstK, 1.0),  # coordinate projection (a nonempty one has norm exactly 1)
    (nn.Identity, 1.0),
)


@contextmanager
def _single_threaded() -> Iterator[None]:
    """Run LAPACK eigensolvers on one thread, restoring the thread count afterwards.

    On 2 cores shared with other processes, threaded ``eigvalsh`` of a 1024 x 1024 matrix was measured at
    15.7 s instead of 0.13-0.5 s single-threaded (threads spin-waiting for a busy core).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _largest_eigenvalue(hermitian: Tensor) -> Tensor:
    """Largest eigenvalue of each (batched) Hermitian matrix, clamped at 0 (the inputs are PSD)."""
    with _single_threaded():
        return torch.linalg.eigvalsh(hermitian)[..., -1].clamp(min=0)


def sll_bound(s2_pos: float, s2_neg: float = 0.0) -> float:
    """``max(1, 2 s_P^2 - 1) + 2 s_M^2``: the SLL layer bound from the two squared spectral norms."""
    return max(1.0, 2.0 * s2_pos - 1.0) + 2.0 * s2_neg


def _split(t_inv: Tensor) -> tuple[Tensor, Tensor]:
    return t_inv.clamp(min=0), (-t_inv).clamp(min=0)


def _dense_s2(weight: Tensor, scales: tuple[Tensor, ...]) -> list[float]:
    """``||W diag(scale)^1/2||^2`` for each scale (>= 0), ``weight = W^T`` stored as (inner, features)."""
    inner, features = weight.shape
    gram = weight @ weight.T if inner <= features else None  # shared by every scale
    out = []
    for scale in scales:
        if not bool((scale > 0).any()):
            out.append(0.0)
            continue
        root = scale.sqrt()
        if gram is not None:
            scaled = root[:, None] * gram * root[None, :]
        else:
            m = root[:, None] * weight
            scaled = m.T @ m
        out.append(float(_largest_eigenvalue(scaled)))
    return out


def _conv_s2(kernel: Tensor, scale: Tensor, spatial_size: int) -> float:
    """``max_w ||K_hat(w) diag(scale)^1/2||^2`` over the DFT frequencies of an (n + k - 1)^2 grid, scale >= 0.

    Per frequency, the Gram ``K_hat K_hat^H`` is the DFT of the channel autocorrelation of the kernel
    (support 2k - 1, offset 0 rolled to index 0 so that every Gram is Hermitian); the smaller channel side
    is used, which has the same nonzero spectrum. Much cheaper than transforming the full kernel.
    """
    if not bool((scale > 0).any()):
        return 0.0
    k = kernel.shape[-1]
    m = scale.sqrt()[:, None, None, None] * kernel  # (inner, channels, k, k)
    if m.shape[0] > m.shape[1]:
        m = m.transpose(0, 1).contiguous()
    grid = max(spatial_size + k - 1, 2 * k - 1)
    auto = F.conv2d(m, m, padding=k - 1)  # (a, a, 2k-1, 2k-1); index k-1 is offset 0
    extra = grid - (2 * k - 1)
    auto = torch.roll(F.pad(auto, (0, extra, 0, extra)), shifts=(1 - k, 1 - k), dims=(-2, -1))
    # Real autocorrelation: the Gram at -w is the conjugate of the one at w, so the half spectrum suffices.
    gram = torch.fft.rfft2(auto).permute(2, 3, 0, 1).contiguous()  # (N, N//2+1, a, a), Hermitian PSD
    return float(_largest_eigenvalue(gram).max())


@torch.no_grad()
def layer_lipschitz_bound(layer: nn.Module, spatial_size: int | None = None) -> float:
    """Sound upper bound on the l2 Lipschitz constant of one piece.

    ``spatial_size`` (input H = W) is needed for :class:`SLLConv`; it defaults to ``layer.spatial_size``.
    Raises ``TypeError`` for modules without a known bound.
    """
    if isinstance(layer, (SLLDense, SLLConv)):
        base = SLLDense if isinstance(layer, SLLDense) else SLLConv
        if type(layer).forward is not base.forward or type(layer)._rescale is not base._rescale:
            # The bound reads compute_t_inv() and the weights; a changed forward could compute anything.
            raise TypeError(f"{type(layer).__name__} overrides the SLL forward; no bound is known for it")
        t_inv = layer.compute_t_inv().detach().to(torch.float64)
        if not bool(torch.isfinite(t_inv).all()):
            return math.inf
        pos, neg = _split(t_inv)
        if isinstance(layer, SLLDense):
            weight = layer.weight.detach().to(torch.float64)
            return sll_bound(*_dense_s2(weight, (pos, neg)))
        size = spatial_size if spatial_size is not None else layer.spatial_size
        if size is None:
            raise ValueError("SLLConv bound needs the input's spatial size (pass spatial_size=...)")
        kernel = layer.kernel.detach().to(torch.float64)
        return sll_bound(_conv_s2(kernel, pos, size), _conv_s2(kernel, neg, size))
    for kind, constant in _EXACT_CONSTANTS:
        if isinstance(layer, kind) and type(layer).forward is kind.forward:  # an overridden forward is unknown
            return constant
    raise TypeError(f"no Lipschitz bound known for {type(layer).__name__}; refusing to assume one")


def iter_chain(module: nn.Module) -> Iterator[nn.Module]:
    """Leaf modules in the order the forward composes them (plain ``nn.Sequential`` and LipSimNetwork only)."""
    if type(module) is nn.Sequential:
        for child in module:
            yield from iter_chain(child)
    elif isinstance(module, LipSimNetwork) and type(module).forward is LipSimNetwork.forward:
        for stage in module.stages():
            yield from iter_chain(stage)
    else:
        yield module


def layer_bounds(net: nn.Module) -> list[tuple[str, float]]:
    """(qualified name, upper bound) for every piece of the chain, in forward order."""
    names = {id(m): name for name, m in net.named_modules()}
    return [(names.get(id(m), type(m).__name__), layer_lipschitz_bound(m)) for m in iter_chain(net)]


def network_lipschitz_bound(net: nn.Module) -> float:
    """Product of the per-piece bounds: a sound bound for the composition (unknown pieces raise)."""
    bound = 1.0
    for _, b in layer_bounds(net):
        bound *= b
    return bound


def jacobian_norm_lower_bound(fn: Callable[[Tensor], Tensor], x: Tensor, iters: int = 30, seed: int = 0) -> float:
    """Largest ``||J v||`` (``||v|| = 1``) over power iterations on ``J^T J``, J the Jacobian of fn at x.

    Every iterate gives a valid LOWER bound on ``||J(x)||`` and hence on the Lipschitz constant; it is a
    sanity tool (it must never exceed an upper bound), never a certificate. For a batched ``x`` the
    Jacobian is block diagonal and its norm is the largest per-sample norm.
    """
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    v = v / v.norm()
    _, vjp_fn = torch.func.vjp(fn, x)
    best = 0.0
    for _ in range(iters):
        with warnings.catch_warnings():  # torch's first forward-AD call scripts decompositions: noise
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
            _, jv = torch.func.jvp(fn, (x,), (v,))
        jv = jv.detach()
        best = max(best, float(jv.norm()))
        (w,) = vjp_fn(jv)
        w = w.detach()
        norm = w.norm()
        if float(norm) == 0.0:
            break
        v = w / norm
    return best
