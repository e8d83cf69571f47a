"""One triplet (ref, x0, x1, p) from its own random stream; the rules are in the package docstring."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipsim_bench.datasets.sample.photos import Source, margin
from lipsim_bench.datasets.sample.pixels import crop, is_flat, jitter, resample_view
from lipsim_bench.datasets.sample.recipe import (
    MAX_TRIES,
    N_CANDIDATES_OTHER,
    N_CANDIDATES_SAME,
    NEG_MIN_OFFSET,
    SHIFT_MAX,
    SHIFT_MIN,
)


@dataclass(frozen=True)
class Triplet:
    ref: np.ndarray
    x0: np.ndarray
    x1: np.ndarray
    p: float
    meta: dict[str, object]


def _pick_level(rng: np.random.Generator, source: Source) -> float:
    scales = sorted(source.levels, reverse=True)
    return scales[int(rng.integers(len(scales)))]


def _pick_centre(rng: np.random.Generator, level: np.ndarray, size: int) -> tuple[int, int]:
    m = margin(size)
    h, w = level.shape[:2]
    return int(rng.integers(m, h - m + 1)), int(rng.integers(m, w - m + 1))


def make_triplet(sources: list[Source], rng: np.random.Generator, size: int) -> Triplet:
    """One triplet from its own random stream; see the module docstring for the rules."""
    # reference: a non-flat crop; the source is drawn once, so every source gets its share
    si = int(rng.integers(len(sources)))
    src = sources[si]
    for _ in range(MAX_TRIES):
        scale = _pick_level(rng, src)
        level = src.levels[scale]
        cy, cx = _pick_centre(rng, level, size)
        ref = crop(level, cy, cx, size)
        if not is_flat(ref):
            break
    ref = np.ascontiguousarray(ref)

    # positive: same content, shifted 6..16 px, rescaled 0.8..1.25, jittered
    while True:
        dy, dx = (int(v) for v in rng.integers(-SHIFT_MAX, SHIFT_MAX + 1, size=2))
        if SHIFT_MIN**2 <= dy * dy + dx * dx <= SHIFT_MAX**2:
            break
    lo, hi = (size * 4 + 4) // 5, size * 5 // 4  # extents 51..80 for size 64
    positive = jitter(resample_view(level, cy + dy, cx + dx, int(rng.integers(lo, hi + 1)), size), rng)

    # negative: nearest to the ref in l2 among 16 candidates of other content
    others = [i for i in range(len(sources)) if i != si]
    candidates: list[tuple[int, float, int, int]] = []
    for _ in range(N_CANDIDATES_SAME):
        for _ in range(MAX_TRIES):
            ny, nx = _pick_centre(rng, level, size)
            if max(abs(ny - cy), abs(nx - cx)) >= NEG_MIN_OFFSET:
                candidates.append((si, scale, ny, nx))
                break
    while others and len(candidates) < N_CANDIDATES_SAME + N_CANDIDATES_OTHER:
        oi = others[int(rng.integers(len(others)))]
        oscale = _pick_level(rng, sources[oi])
        ny, nx = _pick_centre(rng, sources[oi].levels[oscale], size)
        candidates.append((oi, oscale, ny, nx))
    if not candidates:
        raise ValueError(f"no negative candidate for a ref in {src.name}: a split needs 2+ sources or larger photos")
    ref_i = ref.astype(np.int32)
    dists = [
        int(((crop(sources[oi].levels[osc], ny, nx, size).astype(np.int32) - ref_i) ** 2).sum())
        for oi, osc, ny, nx in candidates
    ]
    ni, nscale, ny, nx = candidates[int(np.argmin(dists))]
    negative = jitter(resample_view(sources[ni].levels[nscale], ny, nx, int(rng.integers(lo, hi + 1)), size), rng)

    x1_closer = bool(rng.integers(2))
    x0, x1 = (negative, positive) if x1_closer else (positive, negative)
    meta = {
        "source": src.name,
        "scale": scale,
        "ref_y": cy,
        "ref_x": cx,
        "pos_dy": dy,
        "pos_dx": dx,
        "neg_source": sources[ni].name,
        "neg_scale": nscale,
        "neg_y": ny,
        "neg_x": nx,
    }
    return Triplet(ref, x0, x1, 1.0 if x1_closer else 0.0, meta)
