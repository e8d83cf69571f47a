"""Exact / elementwise image operations (deterministic on every IEEE-754 machine), and the photometric jitter."""

from __future__ import annotations

import numpy as np

from lipsim_bench.datasets.sample.recipe import FLAT_STD


def _binomial_blur(img: np.ndarray, order: int) -> np.ndarray:
    """Separable binomial filter (integer taps / 2**order), edge padded; float64 HxWxC."""
    taps = [1]
    for _ in range(order):
        taps = [a + b for a, b in zip([0, *taps], [*taps, 0])]
    r = order // 2
    h, w = img.shape[:2]
    padded = np.pad(img.astype(np.float64), ((r, r), (0, 0), (0, 0)), mode="edge")
    acc = taps[0] * padded[0:h]
    for k in range(1, len(taps)):  # fixed order of adds: deterministic
        acc += taps[k] * padded[k : k + h]
    padded = np.pad(acc / float(2**order), ((0, 0), (r, r), (0, 0)), mode="edge")
    acc = taps[0] * padded[:, 0:w]
    for k in range(1, len(taps)):
        acc += taps[k] * padded[:, k : k + w]
    return acc / float(2**order)


def _bilinear(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``img`` (HxWxC) at the grid ys x xs (pixel-centre coordinates), clamped."""
    h, w = img.shape[:2]
    y0 = np.floor(ys)
    x0 = np.floor(xs)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    y0i = y0.astype(np.int64)
    x0i = x0.astype(np.int64)
    ya, yb = np.clip(y0i, 0, h - 1), np.clip(y0i + 1, 0, h - 1)
    xa, xb = np.clip(x0i, 0, w - 1), np.clip(x0i + 1, 0, w - 1)
    # only the window the samples touch is converted to float (views of a large photo are small)
    top, left = int(ya.min()), int(xa.min())
    window = img[top : int(yb.max()) + 1, left : int(xb.max()) + 1].astype(np.float64)
    ya, yb, xa, xb = ya - top, yb - top, xa - left, xb - left
    rows_a, rows_b = window[ya], window[yb]
    upper = rows_a[:, xa] * (1.0 - wx) + rows_a[:, xb] * wx
    lower = rows_b[:, xa] * (1.0 - wx) + rows_b[:, xb] * wx
    return upper * (1.0 - wy) + lower * wy


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def downscale(img: np.ndarray, scale: float) -> np.ndarray:
    """Antialiased downscale: 2x2 box for 1/2, binomial pre-blur + bilinear otherwise."""
    if scale == 1.0:
        return img
    h, w = img.shape[:2]
    if scale == 0.5:
        h2, w2 = h // 2, w // 2
        a = img[: 2 * h2, : 2 * w2].astype(np.int32)
        s = a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]
        return _to_uint8(s / 4.0)
    blurred = _binomial_blur(img, 2)
    nh, nw = int(h * scale), int(w * scale)
    ys = (np.arange(nh) + 0.5) / scale - 0.5
    xs = (np.arange(nw) + 0.5) / scale - 0.5
    return _to_uint8(_bilinear(blurred, ys, xs))


def resample_view(level: np.ndarray, cy: int, cx: int, extent: int, size: int) -> np.ndarray:
    """A size x size view of the extent x extent square centred at pixel corner (cy, cx)."""
    # pixel i samples at c - extent/2 + (i + 0.5) * extent/size - 0.5: exact for integer extent, size 2**k
    grid = (np.arange(size) + 0.5) * (extent / size) - extent / 2.0 - 0.5
    return _to_uint8(_bilinear(level, cy + grid, cx + grid))


def crop(level: np.ndarray, cy: int, cx: int, size: int) -> np.ndarray:
    h = size // 2
    return level[cy - h : cy - h + size, cx - h : cx - h + size]


def _grey_sum(img: np.ndarray) -> np.ndarray:
    """256 x grey level (77 R + 150 G + 29 B), exact integers."""
    a = img.astype(np.int64)
    return 77 * a[..., 0] + 150 * a[..., 1] + 29 * a[..., 2]


def is_flat(patch: np.ndarray) -> bool:
    """Grey-level std below FLAT_STD, computed exactly in integers."""
    g = _grey_sum(patch).ravel()
    n = g.size
    var_n2 = n * int((g * g).sum()) - int(g.sum()) ** 2  # n^2 * 256^2 * variance
    return var_n2 < (FLAT_STD * 256 * n) ** 2


def jitter(view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photometric jitter with dyadic factors (exact in float64), then blur or integer noise."""
    b = int(rng.integers(51, 78)) / 64.0  # brightness 0.8 .. 1.2
    c = int(rng.integers(48, 84)) / 64.0  # contrast 0.75 .. 1.3
    s = int(rng.integers(38, 91)) / 64.0  # saturation 0.6 .. 1.4
    g_total = int(_grey_sum(view).sum())
    mean_grey = b * g_total / (256.0 * view.shape[0] * view.shape[1])  # exact: integer / power of two
    x = view.astype(np.float64) * b
    x = mean_grey + (x - mean_grey) * c
    x = np.clip(np.rint(x * 64.0) / 64.0, 0.0, 255.0)  # back onto a coarse dyadic grid: stays exact
    grey = (77.0 * x[..., 0] + 150.0 * x[..., 1] + 29.0 * x[..., 2])[..., None] / 256.0
    x = grey + (x - grey) * s
    x = _to_uint8(x)
    if rng.integers(2) == 0:
        order = int(rng.integers(2, 5))  # binomial order 2, 3, 4: sigma 0.71 .. 1.0
        if order == 3:
            order = 6  # odd orders shift by half a pixel: use sigma 1.22 instead
        return _to_uint8(_binomial_blur(x, order))
    a = int(rng.integers(2, 7))  # sum of three uniform integers in [-a, a]: std sqrt(a(a+1))
    noise = rng.integers(-a, a + 1, size=(3, *x.shape)).sum(axis=0)
    return np.clip(x.astype(np.int64) + noise, 0, 255).astype(np.uint8)
