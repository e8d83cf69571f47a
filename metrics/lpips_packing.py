"""LPIPS-style metrics as one vector per image: the packing shared by ``lpips`` and ``stlpips-*``.

LPIPS (and its shift-tolerant variant) is a distance between vectors after a fixed per-layer rescaling:

    LPIPS(a, b) = sum_l mean_hw sum_c w_lc (f_lchw(a) - f_lchw(b))^2
                = || e(a) - e(b) ||^2,   e(x) = concat_l flatten( sqrt(w_l / (H_l W_l)) * f_l(x) )

where f_l are a trunk's feature maps, unit-normalised over channels at every position, and w_l >= 0 the
learned linear heads (1x1 convs without bias; training clamps them at 0, and :func:`check_heads` refuses
weights that break it). Packing once per image is what makes the direct attack and the cached
embeddings of x0/x1 possible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from lipsim_bench.metrics.errors import MetricError

#: The ``eps`` of the official ``normalize_tensor`` (lpips and stlpips-pytorch alike).
EPS = 1e-10


def unit_channels(feature: Tensor) -> Tensor:
    """``feature / (||feature||_channels + EPS)``, as the official ``normalize_tensor`` computes it.

    ``torch.linalg.vector_norm`` instead of ``sqrt(sum(x ** 2))``: equal values, but its gradient is 0 rather
    than NaN at a position where every channel is 0 (a ReLU map often has such positions).
    """
    return feature / (torch.linalg.vector_norm(feature, dim=1, keepdim=True) + EPS)


def pack_features(features: Sequence[Tensor], heads: Sequence[Tensor]) -> Tensor:
    """``(N, D)``: each layer's unit features times ``sqrt(w_c / (H W))``, flattened and concatenated.

    ``heads[l]`` holds layer l's channel weights in any shape with C elements (e.g. the ``(1, C, 1, 1)``
    weight of the official 1x1 conv).
    """
    parts = []
    for feature, head in zip(features, heads, strict=True):
        weight = head.reshape(1, -1, 1, 1)
        scale = weight.sqrt() / math.sqrt(feature.shape[-2] * feature.shape[-1])
        parts.append((unit_channels(feature) * scale).flatten(1))
    return torch.cat(parts, dim=1)


def squared_l2(e_a: Tensor, e_b: Tensor) -> Tensor:
    """The LPIPS value of two packed embeddings: their squared Euclidean distance, ``(N,)``."""
    return (e_a - e_b).flatten(1).pow(2).sum(dim=1)


def check_heads(heads: Sequence[Tensor], what: str) -> None:
    """Refuse negative head weights: with one, LPIPS is no longer a squared distance (nor a packing)."""
    for index, head in enumerate(heads):
        if (head < 0).any():
            raise MetricError(
                f"{what}: linear head {index} has negative weights, so LPIPS is not a squared distance; "
                "use the published weights"
            )
