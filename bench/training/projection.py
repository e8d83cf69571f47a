"""A fixed random projection of a teacher's embeddings, for teachers far wider than their student.

ST-LPIPS packs a 64 x 64 image into 158,144 numbers and its distance is their squared l2 distance; a LipSim
student embeds into 128. A Gaussian matrix ``P`` (D x K, entries N(0, 1/K), drawn from a seeded generator)
keeps squared distances in expectation and within a relative spread of about sqrt(2 / K) (Johnson and
Lindenstrauss), so ``e(x) @ P`` is a K-number teacher with (nearly) the same geometry. Measured on the sample
set's val split: ST-LPIPS alex scores 86.33, the centred, unit-normalised 128-number projection 86.00 (1 - cos).
"""

from __future__ import annotations

import torch
from torch import Tensor


class GaussianProjection:
    """``x -> x @ P`` with ``P`` (in_dim x out_dim) drawn once from ``seed``; the same seed gives the same matrix."""

    def __init__(self, in_dim: int, out_dim: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.matrix = torch.randn(in_dim, out_dim, generator=generator) / out_dim**0.5
        self.seed = seed

    @property
    def out_dim(self) -> int:
        return int(self.matrix.shape[1])

    def __call__(self, embeddings: Tensor) -> Tensor:
        flat = embeddings.flatten(1).float()
        return flat @ self.matrix.to(flat.device)
