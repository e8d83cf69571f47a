"""LipSim Bench: adversarial robustness of perceptual similarity metrics.

``bench.evaluate(metric=..., dataset=..., evaluations=[...])`` is the one-call Python API
(see :mod:`lipsim_bench.api`); ``python run_bench.py`` the command line. Imported lazily, so that the
low layers (``lipsim_bench.registry``, ``lipsim_bench.errors``) stay cheap to import from ``metrics``.
"""

from typing import Any

__all__ = ["evaluate"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from lipsim_bench.api import evaluate

        return evaluate
    raise AttributeError(f"module 'lipsim_bench' has no attribute {name!r}")
