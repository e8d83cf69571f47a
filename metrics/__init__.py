"""Perceptual metric adapters and their registry.

>>> from metrics import create_metric, list_metrics
>>> metric = create_metric("pixel-l2")
"""

from lipsim_bench.metrics.base import PerceptualMetric, bound_proven_by_project, declares_bound
from lipsim_bench.metrics.conventions import Conventions
from lipsim_bench.metrics.errors import MetricError, WeightsUnavailableError
from lipsim_bench.metrics.registry import (
    MetricSpec,
    create_metric,
    default_metrics,
    get_metric_spec,
    list_metrics,
    register_metric,
    unregister_metric,
)

__all__ = [
    "Conventions",
    "MetricError",
    "MetricSpec",
    "PerceptualMetric",
    "WeightsUnavailableError",
    "bound_proven_by_project",
    "create_metric",
    "declares_bound",
    "default_metrics",
    "get_metric_spec",
    "list_metrics",
    "register_metric",
    "unregister_metric",
]
