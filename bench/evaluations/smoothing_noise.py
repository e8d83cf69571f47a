"""Gaussian noise for smoothing, as common random numbers: a triplet's noise depends only on the run's
seed, the triplet's id and the phase (selection or estimation), never on the metric, the batch, the
noise batch size or sigma (the draws are standard normals, scaled by sigma afterwards).

So every metric and every sigma sees the same noise on the same triplet, and comparisons between
them are paired. Each sample is its own ``randn`` call: the generator's stream then does not depend
on how the samples are grouped into forward passes. Noise is drawn on the run's device (the same
device gives the same numbers; CPU and CUDA streams differ).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch
from torch import Tensor


def triplet_seed(seed: int, triplet_id: object, phase: str) -> int:
    """A 64-bit generator seed from (run seed, triplet id, phase), stable across processes and platforms."""
    digest = hashlib.sha256(f"{seed}:{triplet_id}:{phase}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def noisy_copies(image: Tensor, count: int, sigma: float, seed: int, batch: int) -> Iterator[Tensor]:
    """``count`` copies of ``image`` (C, H, W) plus N(0, sigma^2 I) noise, ``batch`` at a time; not clamped
    (the smoothing theorems are for unclamped Gaussian noise)."""
    gen = torch.Generator(device=image.device).manual_seed(seed)
    done = 0
    while done < count:
        size = min(batch, count - done)
        noise = torch.stack(
            [torch.randn(image.shape, generator=gen, device=image.device, dtype=image.dtype) for _ in range(size)]
        )
        yield image.unsqueeze(0) + sigma * noise
        done += size
