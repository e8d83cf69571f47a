"""Gaussian noise for smoothing, as common random numbers: a triplet's noise depends only on the run's
seed, the triplet's id and the phase (selection or estimation), never on the metric, the batch, the
noise batch size or sigma (the draws are standard normals z, scaled by sigma afterwards).

So every metric and every sigma sees the same noise on the same triplet, and comparisons between
them are paired. The stream is defined as one ``randn(C, H, W)`` call per sample, so it does not depend on
how the samples are grouped into forward passes. Noise is drawn on the run's device (the same device gives
the same numbers; CPU and CUDA streams differ).

Cost: on the CPU the draw is a large share of a cheap metric's smoothing (13.5M normals per triplet for
n0 100 + n 1000 at 3x64x64). Two savings, neither changing a number:

* one ``randn(count, C, H, W)`` call where it reproduces the per-sample calls bit for bit: CPU, float32 /
  float64, C*H*W a multiple of 16 (torch's CPU normal kernel transforms uniforms in blocks of 16, and redraws
  the tail of a size that is not a multiple of 16; ``tests/bench/evaluations/test_smoothing_noise.py`` checks
  both sides). Elsewhere, and on every other device (not checked here), one call per sample as before.
* a bounded cache of the standard normals z of (seed, count, shape), CPU only: a run's units (metric x sigma)
  visit the same triplets in turn, so the same z are needed once per unit. The units sweep the triplets
  cyclically, where a least-recently-used cache would never hit; this one keeps what it first stored until
  it is full and then stores nothing new (hits = the share of triplets that fit, on every later unit).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch
from torch import Tensor

#: Bytes of standard normals the cache may hold (1 GiB: 19 triplets of 1100 samples at 3x64x64, float32).
NOISE_CACHE_BYTES = 1 << 30
#: Elements per sample whose one-call draw equals per-sample draws (torch's CPU normal kernel's block).
BLOCK = 16

_cache: dict[tuple[object, ...], Tensor] = {}
_cached_bytes = 0


def triplet_seed(seed: int, triplet_id: object, phase: str) -> int:
    """A 64-bit generator seed from (run seed, triplet id, phase), stable across processes and platforms."""
    digest = hashlib.sha256(f"{seed}:{triplet_id}:{phase}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def batched_draw_is_exact(shape: torch.Size | tuple[int, ...], dtype: torch.dtype, device: torch.device) -> bool:
    """Whether one ``randn(k, *shape)`` call equals ``k`` calls of ``randn(shape)`` (and leaves the same stream)."""
    numel = 1
    for size in shape:
        numel *= size
    return device.type == "cpu" and dtype in (torch.float32, torch.float64) and numel % BLOCK == 0


def standard_normals(
    count: int, shape: torch.Size, gen: torch.Generator, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """The next ``count`` samples of the stream, ``(count, *shape)``: one call where exact, else one per sample."""
    if batched_draw_is_exact(shape, dtype, device):
        return torch.randn((count, *shape), generator=gen, device=device, dtype=dtype)
    return torch.stack([torch.randn(shape, generator=gen, device=device, dtype=dtype) for _ in range(count)])


def clear_noise_cache() -> None:
    """Empty the cache (tests; a caller that needs the memory back)."""
    global _cached_bytes
    _cache.clear()
    _cached_bytes = 0


def _cached_normals(image: Tensor, count: int, seed: int) -> Tensor | None:
    """All ``count`` samples of ``seed``'s stream, from the cache or drawn and kept while it has room; None when
    they may not be cached (not on the CPU, or larger than the whole cache): the caller streams them."""
    global _cached_bytes
    if image.device.type != "cpu":
        return None
    size = count * image.numel() * image.element_size()
    if size > NOISE_CACHE_BYTES:
        return None
    key = (seed, count, tuple(image.shape), image.dtype)
    z = _cache.get(key)
    if z is None:
        gen = torch.Generator(device=image.device).manual_seed(seed)
        z = standard_normals(count, image.shape, gen, image.dtype, image.device)
        if _cached_bytes + size <= NOISE_CACHE_BYTES:
            _cache[key] = z
            _cached_bytes += size
    return z


def noisy_copies(image: Tensor, count: int, sigma: float, seed: int, batch: int) -> Iterator[Tensor]:
    """``count`` copies of ``image`` (C, H, W) plus N(0, sigma^2 I) noise, ``batch`` at a time; not clamped
    (the smoothing theorems are for unclamped Gaussian noise)."""
    z = _cached_normals(image, count, seed)
    gen = None if z is not None else torch.Generator(device=image.device).manual_seed(seed)
    done = 0
    while done < count:
        size = min(batch, count - done)
        if z is not None:
            noise = z[done : done + size]
        else:
            noise = standard_normals(size, image.shape, gen, image.dtype, image.device)
        yield image.unsqueeze(0) + sigma * noise
        done += size
