"""Errors a user can fix: the CLI prints their message on one line and exits with code 2."""

from lipsim_bench.errors import BenchError


class MetricError(BenchError):
    """An unknown metric, bad metric options, or weights that are not available here."""


class WeightsUnavailableError(MetricError):
    """The metric's weights are neither on disk nor downloadable; the message says how to get them."""
