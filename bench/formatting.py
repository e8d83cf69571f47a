"""How radii read in tables, labels, figures and logs: one rule everywhere (see :func:`format_eps`).

Formats text and computes no number: listed in metrics/fingerprint.py's NOT_COMPUTING, so editing it
does not re-key records.
"""

from __future__ import annotations

import math

#: Relative slack when asking whether a float is a short decimal (0.1 + 0.2 is 0.30000000000000004).
_SLACK = 1e-9


def format_eps(eps: float | None) -> str:
    """A radius, printed one way everywhere.

    A short decimal (at most 3 significant digits, exactly: 0.2, 0.25, 0.5, 1, 2) prints as that decimal;
    otherwise a multiple of 1/255 prints as the paper writes it (36/255, 4/255); otherwise 3 significant
    digits (0.141). So 0.2 reads 0.2, never 51/255. Files of numbers (scores.csv) keep the raw floats.
    """
    if eps is None or (isinstance(eps, float) and math.isnan(eps)):
        return ""
    eps = float(eps)
    if eps == 0:
        return "0"
    short = float(f"{eps:.3g}")
    if abs(short - eps) <= _SLACK * abs(eps):
        return f"{short:g}"
    scaled = eps * 255
    if abs(scaled - round(scaled)) < 1e-6:
        return f"{round(scaled)}/255"
    return f"{eps:.3g}"


def ordinal(k: int) -> str:
    """3 -> '3rd', 11 -> '11th'."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def subsample_phrase(every: int) -> str:
    """How a run subsampled its triplets (``--every K``), for the dry run and the tables' footers."""
    return "" if every == 1 else f", every {ordinal(every)} triplet"
