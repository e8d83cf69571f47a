"""Photos and their views for the bundled retrieval and kNN sets, drawn deterministically from the sample set's sources.

A *photo* is one 64x64 crop place of a source photograph at one of its scales (never nearly flat, as the 2AFC
references); a *view* of it is that place shifted by at most :data:`VIEW_SHIFT` px and covering 57-72 source px
(a rescale of 0.89-1.125), resampled to 64x64 and jittered like the 2AFC closer image
(:func:`lipsim_bench.datasets.sample.pixels.jitter`). So two views of one photo are at most 16 px and 1.26x apart,
as a 2AFC reference and its closer image. Photos of one source keep their centres apart (Chebyshev distance, in the
pixels of the finer of the two scales), so that two photos never show nearly the same thing.

Randomness: each photo draws its place and then its views from its own stream ``default_rng([seed, tag, *key, k])``
(integer draws only; the pixel operations are the sample set's exact ones). A stream that finds no free, non-flat
place in :data:`MAX_TRIES` tries is skipped (the next ``k`` is used) and counted in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipsim_bench.datasets.sample.photos import Source, margin
from lipsim_bench.datasets.sample.pixels import crop, is_flat, jitter, resample_view
from lipsim_bench.datasets.sample.recipe import MAX_TRIES

VIEW_SHIFT = 8  # px: a view's centre is at most this far (euclidean) from its photo's
#: extra streams a set may skip before the build gives up (a recipe that asks for more photos than fit)
MAX_SKIPPED = 256


@dataclass(frozen=True)
class Photo:
    """One crop place: source index, scale, centre (level pixels)."""

    source: int
    scale: float
    cy: int
    cx: int


@dataclass(frozen=True)
class View:
    """One rendered view of a photo and how it was made."""

    image: np.ndarray
    dy: int
    dx: int
    extent: int


def view_extents(size: int) -> tuple[int, int]:
    """Smallest and largest extent of a view: 57..72 source px for size 64 (a rescale of 0.89..1.125)."""
    return (size * 9 + 9) // 10, size * 9 // 8


def _quarters(scale: float) -> int:
    return round(scale * 4)  # scales are 1, 3/4, 1/2: exact integers in quarters


def apart(a: Photo, b: Photo, offset: int) -> bool:
    """Whether two photos' centres are ``offset`` px apart along some axis (in the finer photo's pixels), exactly.

    In source pixels the centres are ``4 c / q`` (q = scale in quarters); the condition
    ``|4ca/qa - 4cb/qb| >= 4 offset / max(qa, qb)`` is, times ``qa qb / 4``, the integer test below."""
    if a.source != b.source:
        return True
    qa, qb = _quarters(a.scale), _quarters(b.scale)
    limit = offset * min(qa, qb)
    return abs(a.cy * qb - b.cy * qa) >= limit or abs(a.cx * qb - b.cx * qa) >= limit


def _place(src: Source, si: int, rng: np.random.Generator, size: int, placed: list[Photo], offset: int) -> Photo | None:
    """A non-flat crop place of ``src`` apart from every photo in ``placed``, or None after MAX_TRIES tries."""
    scales = sorted(src.levels, reverse=True)
    m = margin(size)
    for _ in range(MAX_TRIES):
        scale = scales[int(rng.integers(len(scales)))]
        level = src.levels[scale]
        h, w = level.shape[:2]
        photo = Photo(si, scale, int(rng.integers(m, h - m + 1)), int(rng.integers(m, w - m + 1)))
        if is_flat(crop(level, photo.cy, photo.cx, size)):
            continue
        if all(apart(photo, other, offset) for other in placed):
            return photo
    return None


def render_view(src: Source, photo: Photo, rng: np.random.Generator, size: int) -> View:
    """One jittered view of ``photo`` (see the module docstring)."""
    while True:
        dy, dx = (int(v) for v in rng.integers(-VIEW_SHIFT, VIEW_SHIFT + 1, size=2))
        if dy * dy + dx * dx <= VIEW_SHIFT**2:
            break
    lo, hi = view_extents(size)
    extent = int(rng.integers(lo, hi + 1))
    image = jitter(resample_view(src.levels[photo.scale], photo.cy + dy, photo.cx + dx, extent, size), rng)
    return View(image, dy, dx, extent)


def area_weighted(sources: list[Source]) -> list[int]:
    """Cumulative full-scale areas: a source drawn by an integer below the total is drawn in proportion to its area."""
    total, bounds = 0, []
    for src in sources:
        h, w = src.levels[max(src.levels)].shape[:2]
        total += h * w
        bounds.append(total)
    return bounds


def draw_photos(
    sources: list[Source],
    stream: list[int],
    count: int,
    views: list[int],
    size: int,
    offset: int,
    source: int | None = None,
) -> tuple[list[tuple[Photo, list[View]]], int]:
    """``count`` photos apart from each other, photo ``i`` with ``views[i]`` views, and how many streams were skipped.

    The source is ``source`` when given, else drawn in proportion to the sources' areas (so small photos do not
    run out of free places first). Photo streams are ``[*stream, k]`` for k = 0, 1, ..."""
    bounds = area_weighted(sources)
    drawn: list[tuple[Photo, list[View]]] = []
    k = skipped = 0
    while len(drawn) < count:
        if skipped > MAX_SKIPPED:
            raise ValueError(f"only {len(drawn)} of {count} photos fit (stream {stream}): ask for fewer")
        rng = np.random.default_rng([*stream, k])
        k += 1
        if source is None:
            pick = int(rng.integers(bounds[-1]))
            si = next(i for i, b in enumerate(bounds) if pick < b)
        else:
            si = source
        photo = _place(sources[si], si, rng, size, [p for p, _ in drawn], offset)
        if photo is None:
            skipped += 1
            continue
        drawn.append((photo, [render_view(sources[si], photo, rng, size) for _ in range(views[len(drawn)])]))
    return drawn, skipped


def spread(count: int, chosen: int) -> list[bool]:
    """``chosen`` of ``count`` positions, evenly spread (Bresenham): which photos are queried, and in what order."""
    return [(i + 1) * chosen // count > i * chosen // count for i in range(count)]
