"""Reduced-precision embeddings (TF32, bf16, fp16 autocast): a GPU fast path, chosen per run.

    >>> fast = with_precision(create_metric("dreamsim"), "bf16")

Why only some metrics: a certificate is a statement about the fp32 network its Lipschitz bound was
computed for, and every attack flip is checked against it; so a metric with a bound
(``lipschitz`` set or ``lipschitz_for`` overridden: LipSim, pixel-l2) is always returned unchanged and stays fp32.
Reduced precision applies to the foundation adapters without a bound (CLIP, DINO, DreamSim, LPIPS,
robust CLIP), where it only has to keep their decisions (``tests/metrics/test_precision.py``).

- ``bf16`` / ``fp16``: ``embed`` runs under ``torch.autocast(device, dtype)``; the embedding comes
  back as float32 and ``distance`` runs in float32. Gradients flow through (attacks need them);
  autocast records the casts, so the backward pass runs in the same reduced precision.
  ``fp16`` needs a CUDA device (a CPU run is refused: CPU fp16 matmuls are no fast path);
  ``bf16`` works on CPU too (what the tests use).
- ``tf32``: on CUDA, ``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``
  are switched on for the ``embed`` call and restored after it. The backward pass runs later, under
  whatever flags are set then (fp32 by default), so TF32 speeds the forward pass only. On CPU: fp32.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from lipsim_bench.metrics.base import PerceptualMetric, declares_bound
from lipsim_bench.metrics.errors import MetricError

PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16")
_AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str) -> str:
    """``precision`` if known; one clear line naming the choices otherwise."""
    if precision not in PRECISIONS:
        raise MetricError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def precision_applies(metric: PerceptualMetric) -> bool:
    """Whether reduced precision may be used: never for a metric with a Lipschitz bound (certificates are fp32)."""
    return not declares_bound(metric)


def with_precision(metric: PerceptualMetric, precision: str) -> PerceptualMetric:
    """``metric`` whose ``embed`` runs in ``precision``; unchanged for fp32 or a metric with a Lipschitz bound."""
    check_precision(precision)
    if precision == "fp32" or not precision_applies(metric):
        return metric
    return ReducedPrecisionMetric(metric, precision)


@contextmanager
def _tf32(device_type: str) -> Iterator[None]:
    """TF32 matmuls and convolutions on CUDA for the block, the previous flags restored after it."""
    if device_type != "cuda":
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


class ReducedPrecisionMetric(PerceptualMetric):
    """A bound-free metric whose ``embed`` runs in reduced precision; everything else is the wrapped metric's.

    Attributes the wrapper does not have (``input_size``, ``image_size``, ...) are read from the
    wrapped metric, so code that inspects a metric sees the same one.
    """

    lipschitz = None  # with_precision never wraps a metric that has a bound

    def __init__(self, metric: PerceptualMetric, precision: str) -> None:
        if not precision_applies(metric):
            raise MetricError(
                f"metric {type(metric).__name__} has a Lipschitz bound: its certificates need fp32, "
                "so it cannot run in reduced precision; use with_precision, which leaves it fp32"
            )
        super().__init__()
        self.inner = metric
        self.precision = check_precision(precision)
        self.name = metric.name  # type: ignore[misc]  (ClassVar metadata, per instance here)
        self.description = metric.description  # type: ignore[misc]
        self.distance_kind = metric.distance_kind  # type: ignore[misc]
        self.train(metric.training)

    def embed(self, x: Tensor) -> Tensor:
        device_type = x.device.type
        if self.precision == "tf32":
            with _tf32(device_type):
                return self.inner.embed(x)
        if self.precision == "fp16" and device_type != "cuda":
            raise MetricError(
                f"precision fp16: float16 autocast needs a CUDA device, and the images are on {device_type}; "
                "use --device cuda, or bf16 / fp32 here"
            )
        with torch.autocast(device_type, dtype=_AUTOCAST_DTYPES[self.precision]):
            embedding = self.inner.embed(x)
        return embedding.float() if isinstance(embedding, Tensor) else embedding

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        return self.inner.distance(e_a, e_b)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__.get("_modules", {}).get("inner")  # absent while unpickling or copying
            if inner is None:
                raise
            return getattr(inner, name)

    def extra_repr(self) -> str:
        return f"precision={self.precision!r}"
