"""Turning a ``--device`` option (or the API's ``device=``) into a torch device, before any work.

The project runs on ``cpu`` and ``cuda``/``cuda:K``; any other torch device type (meta, mps, xla, ...)
is refused here rather than failing halfway through a run.
"""

from __future__ import annotations

import torch

from lipsim_bench.errors import BenchError

SUPPORTED = ("cpu", "cuda")


def resolve_device(device: str | torch.device | None, where: str = "--device") -> torch.device:
    """``None`` means cuda when available; anything else must name a device this machine has."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, bool) or not isinstance(device, (str, torch.device)):
        raise BenchError(
            f"{where} {device!r} is not a device name; use cpu, cuda or cuda:K (or leave it out: cuda when available)"
        )
    name = str(device).strip()
    if not name:
        raise BenchError(f"{where} is empty; use cpu, cuda or cuda:K (or leave it out: cuda when available)")
    try:
        parsed = torch.device(name)
    except (RuntimeError, ValueError):
        raise BenchError(f"{where} {name!r} is not a device; use cpu, cuda or cuda:K") from None
    if parsed.type not in SUPPORTED:
        raise BenchError(
            f"{where} {name!r}: the benchmark runs on cpu or cuda (cuda:K), not {parsed.type}; use one of those"
        )
    if parsed.type == "cpu" and parsed.index not in (None, 0):
        raise BenchError(f"{where} {name!r}: there is one cpu device; use cpu")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise BenchError(f"{where} {name}: CUDA is not available on this machine; use cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise BenchError(
                f"{where} {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}; pick one of them"
            )
    return parsed
