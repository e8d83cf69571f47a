"""Checks every metric adapter must pass, shared by the adapter tests."""

from __future__ import annotations

import torch

from lipsim_bench.metrics import PerceptualMetric


def assert_differentiable_and_batch_invariant(
    metric: PerceptualMetric, n: int, size: int, *, atol: float = 1e-5
) -> None:
    """Gradients reach the input pixels (attacks need them), and a batch embeds like its images one by one."""
    a = torch.rand(n, 3, size, size, requires_grad=True)
    b = torch.rand(n, 3, size, size)
    metric(a, b).sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    with torch.no_grad():
        batch = metric.embed(b)
        singles = torch.cat([metric.embed(b[i : i + 1]) for i in range(n)])
    assert torch.allclose(batch, singles, atol=atol, rtol=atol)
