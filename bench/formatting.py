"""How radii read in tables, labels and logs: multiples of 1/255 as the paper writes them (36/255)."""

from __future__ import annotations

import math


def format_eps(eps: float | None) -> str:
    """Radii that are multiples of 1/255 read as the paper writes them (36/255), others as decimals."""
    if eps is None or (isinstance(eps, float) and math.isnan(eps)):
        return ""
    scaled = eps * 255
    if 0 < eps < 1 and abs(scaled - round(scaled)) < 1e-6:
        return f"{round(scaled)}/255"
    return f"{eps:g}"


def ordinal(k: int) -> str:
    """3 -> '3rd', 11 -> '11th'."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def subsample_phrase(every: int) -> str:
    """How a run subsampled its triplets (``--every K``), for the dry run and the tables' footers."""
    return "" if every == 1 else f", every {ordinal(every)} triplet"
