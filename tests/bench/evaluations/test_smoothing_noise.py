"""Smoothing noise: the one-call draw and the cache give exactly the per-sample stream, on every shape."""

from __future__ import annotations

import pytest
import torch

from lipsim_bench.evaluations import smoothing_noise
from lipsim_bench.evaluations.smoothing_noise import batched_draw_is_exact, clear_noise_cache, noisy_copies

#: C*H*W multiples of 16 (one call) and not (one call per sample), from 8 to 150528 elements.
SHAPES = [(3, 64, 64), (3, 224, 224), (3, 8, 8), (1, 4, 4), (3, 16, 16), (3, 5, 5), (3, 7, 7), (2, 2, 2), (1, 1, 17)]


@pytest.fixture(autouse=True)
def empty_cache():
    clear_noise_cache()
    yield
    clear_noise_cache()


def per_sample(image: torch.Tensor, count: int, sigma: float, seed: int) -> torch.Tensor:
    """The definition of the stream: one randn(C, H, W) call per sample."""
    gen = torch.Generator().manual_seed(seed)
    return torch.stack(
        [image + sigma * torch.randn(image.shape, generator=gen, dtype=image.dtype) for _ in range(count)]
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_noisy_copies_are_the_per_sample_stream_whatever_the_batch(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    image = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    expected = per_sample(image, 23, 0.25, seed=7)
    for batch in (23, 5, 1):
        clear_noise_cache()
        assert torch.equal(torch.cat(list(noisy_copies(image, 23, 0.25, 7, batch))), expected), (shape, batch)
    # a cache hit (another sigma of the same triplet) scales the same standard normals
    again = torch.cat(list(noisy_copies(image, 23, 0.5, 7, 4)))
    assert torch.equal(again, per_sample(image, 23, 0.5, seed=7))


@pytest.mark.parametrize("shape", SHAPES)
def test_one_call_is_used_exactly_where_it_equals_the_per_sample_calls(shape: tuple[int, ...]) -> None:
    """The rule batched_draw_is_exact is checked against torch itself: where it says no, one call differs."""
    one = torch.randn((9, *shape), generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    each = torch.stack([torch.randn(shape, generator=gen) for _ in range(9)])
    assert torch.equal(one, each) == batched_draw_is_exact(shape, torch.float32, torch.device("cpu")), shape


def test_the_cache_is_bounded_and_keeps_what_it_first_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    image = torch.rand(3, 8, 8)
    one = 10 * image.numel() * image.element_size()
    monkeypatch.setattr(smoothing_noise, "NOISE_CACHE_BYTES", 2 * one)
    for seed in range(4):
        list(noisy_copies(image, 10, 0.25, seed, 3))
    assert sorted(key[0] for key in smoothing_noise._cache) == [0, 1]
    assert smoothing_noise._cached_bytes == 2 * one
    # too large for the whole cache: streamed batch by batch, the same numbers, nothing stored
    big = torch.cat(list(noisy_copies(image, 30, 0.25, 9, 7)))
    assert torch.equal(big, per_sample(image, 30, 0.25, seed=9)) and len(smoothing_noise._cache) == 2
