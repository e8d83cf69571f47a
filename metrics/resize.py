"""Differentiable resizing inside ``embed``, and the exact l2 operator norm of that resize.

A resize is part of the map from the attacked input to the embedding, so a metric that resizes
must multiply its network's Lipschitz bound by the resize's operator norm. Bilinear resizing
without antialiasing is separable and linear: per channel Y = R_h X R_w^T, whose l2 operator norm
is sigma_max(R_h) * sigma_max(R_w), computed here exactly from the interpolation matrices.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor


def resize_to(x: Tensor, size: int) -> Tensor:
    """Bilinear resize of ``(N, C, H, W)`` to ``size`` x ``size``; identity when already that size."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)


@lru_cache(maxsize=64)
def _axis_norm(n_in: int, n_out: int) -> float:
    eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, 1, 1, n_in)  # n_in one-hot rows
    rows = F.interpolate(eye, size=(1, n_out), mode="bilinear", align_corners=False, antialias=False)
    matrix = rows.reshape(n_in, n_out).T  # (n_out, n_in): the interpolation matrix of one axis
    return float(torch.linalg.matrix_norm(matrix, ord=2))


def resize_lipschitz(in_hw: tuple[int, int], size: int) -> float:
    """Exact l2 operator norm of :func:`resize_to` from ``in_hw`` to ``size`` x ``size``."""
    if tuple(in_hw) == (size, size):
        return 1.0
    return _axis_norm(in_hw[0], size) * _axis_norm(in_hw[1], size)
