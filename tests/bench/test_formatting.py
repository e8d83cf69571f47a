"""Radii print one way everywhere: short decimals as decimals, other multiples of 1/255 as k/255, the rest
to 3 significant digits; and formatting text never re-keys records."""

from __future__ import annotations

import pytest

import lipsim_bench.formatting
from lipsim_bench.formatting import format_eps
from lipsim_bench.metrics.fingerprint import _user_code


@pytest.mark.parametrize(
    "eps, text",
    [
        (0.2, "0.2"),  # a multiple of 1/255 (51/255), but a short decimal first
        (0.25, "0.25"),
        (0.5, "0.5"),
        (1.0, "1"),
        (3, "3"),
        (0.0625, "0.0625"),
        (0.1 + 0.2, "0.3"),  # float noise is not a fourth digit
        (36 / 255, "36/255"),
        (4 / 255, "4/255"),
        (0.1411, "0.141"),  # neither: 3 significant digits
        (1 / 7, "0.143"),
        (0.0, "0"),
        (None, ""),
        (float("nan"), ""),
    ],
)
def test_one_rule_for_every_radius(eps: float | None, text: str) -> None:
    assert format_eps(eps) == text


def test_formatting_is_not_part_of_any_records_code_fingerprint() -> None:
    assert not _user_code(lipsim_bench.formatting)
