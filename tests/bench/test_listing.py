"""``run_bench.py list`` shows every metric's stated conventions under its name, and "not stated" for a plugin
metric that gives none."""

from __future__ import annotations

import re

import pytest

from lipsim_bench.cli import main
from lipsim_bench.metrics import PerceptualMetric, get_metric_spec, list_metrics, register_metric, unregister_metric


def listed(capsys: pytest.CaptureFixture) -> str:
    assert main(["list"]) == 0
    return capsys.readouterr().out


def block(out: str, name: str) -> str:
    """The lines ``list`` prints for metric ``name`` (its row and the indented lines under it), unwrapped."""
    found = re.search(rf"^  {re.escape(name)} .*\n((?: {{21}}.*\n)*)", out, flags=re.MULTILINE)
    assert found, f"{name} is not listed"
    return re.sub(r"\s+", " ", found.group(0))


def test_list_shows_every_stated_field_of_every_metric(capsys: pytest.CaptureFixture) -> None:
    out = listed(capsys)
    for name in list_metrics():
        spec, shown = get_metric_spec(name), block(out, name)
        if spec.conventions is None:
            assert "conventions: not stated" in shown, shown
            continue
        c = spec.conventions
        for label, text in [("input", c.input), ("resize", c.resize), ("distance", c.distance), ("mirrors", c.mirrors)]:
            assert f"{label}: {text}" in shown, (name, label, shown)
        assert f"weights are: {spec.weights}" in shown


def test_list_lines_stay_readable(capsys: pytest.CaptureFixture) -> None:
    """The conventions wrap at 120 columns (only a `get them:` hint, one long command, may run longer)."""
    out = listed(capsys)
    metrics = out.split("\n\n")[0].splitlines()
    long = [line for line in metrics if len(line) > 120 and not line.lstrip().startswith("get them:")]
    assert all(not re.match(r" {21}(input|resize|distance|mirrors|weights are):", line) for line in long), long


def test_a_plugin_metric_without_conventions_lists_as_not_stated(capsys: pytest.CaptureFixture) -> None:
    @register_metric("test-no-conventions", description="toy without a convention record")
    class NoConventions(PerceptualMetric):
        def embed(self, x):
            return x.mean(dim=(2, 3))

    try:
        shown = block(listed(capsys), "test-no-conventions")
    finally:
        unregister_metric("test-no-conventions")
    assert "toy without a convention record" in shown and "conventions: not stated" in shown
    assert "weights are: none (no learned weights)" in shown and "input:" not in shown
