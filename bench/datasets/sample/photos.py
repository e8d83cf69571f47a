"""The source photographs: scikit-image's bundled photos as uint8 RGB, kept at the usable scales."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lipsim_bench.datasets.sample.pixels import downscale
from lipsim_bench.datasets.sample.recipe import LEVEL_SCALES, SHIFT_MAX


@dataclass(frozen=True)
class Source:
    """One source photo at its usable scales (uint8 HxWx3 arrays)."""

    name: str
    levels: dict[float, np.ndarray]


def _skimage_data_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def _load_rgb(filename: str) -> np.ndarray:
    """A bundled scikit-image photo as uint8 RGB; grayscale is repeated to three channels."""
    from PIL import Image

    path = _skimage_data_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(f"scikit-image sample photo {path} not found; reinstall scikit-image")
    with Image.open(path) as img:
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def source_name(filename: str) -> str:
    return filename.rsplit(".", 1)[0]


def margin(size: int) -> int:
    """Distance a view's centre keeps from the border: shift + half the largest extent + 2."""
    return SHIFT_MAX + (size * 5 // 4) // 2 + 2


def load_sources(filenames: tuple[str, ...], size: int) -> list[Source]:
    m = margin(size)
    sources = []
    for filename in filenames:
        img = _load_rgb(filename)
        levels = {}
        for scale in LEVEL_SCALES:
            level = downscale(img, scale)
            if min(level.shape[:2]) >= 2 * m + size // 4:
                levels[scale] = level
        if not levels:
            raise ValueError(f"source {filename} is too small for {size}x{size} patches")
        sources.append(Source(source_name(filename), levels))
    return sources
