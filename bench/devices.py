"""Turning a ``--device`` option into a torch device, with a clear error for a machine without CUDA."""

from __future__ import annotations

import torch

from lipsim_bench.errors import BenchError


def resolve_device(device: str | None) -> torch.device:
    """``None`` means cuda when available; a cuda request without CUDA is a user error."""
    name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(name)
    except RuntimeError:
        raise BenchError(f"--device {name!r} is not a device; use cpu, cuda or cuda:K") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return parsed
