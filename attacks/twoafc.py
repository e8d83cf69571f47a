"""The 2AFC decision as a classifier of the reference image, for attacks built for classifiers.

Only the reference is perturbed. x0 and x1 are embedded once per batch and held fixed (recomputing
them every step gives the same gradients and costs up to 3x more). The two logits are [d1, d0]:
class 1 (x1 is closer) wins when d0 > d1, so the label of a triplet is round(p).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metrics import PerceptualMetric


class TwoAFCClassifier(nn.Module):
    """``x_ref -> [d(x_ref, x1), d(x_ref, x0)]`` with cached x0/x1 embeddings.

    Attacks drop finished examples from their batch; :meth:`restrict` gives the classifier of a
    subset, so per-example cached embeddings stay aligned with the examples still under attack.
    """

    def __init__(self, metric: PerceptualMetric, e0: Tensor, e1: Tensor) -> None:
        super().__init__()
        self.metric = metric
        self.e0 = e0
        self.e1 = e1

    @classmethod
    def from_images(cls, metric: PerceptualMetric, x0: Tensor, x1: Tensor) -> "TwoAFCClassifier":
        with torch.no_grad():
            e0, e1 = metric.embed(torch.cat([x0, x1])).chunk(2)
        return cls(metric, e0, e1)

    def restrict(self, index: Tensor) -> "TwoAFCClassifier":
        return TwoAFCClassifier(self.metric, self.e0[index], self.e1[index])

    def forward(self, x_ref: Tensor) -> Tensor:
        if len(x_ref) != len(self.e0):
            raise ValueError(f"batch of {len(x_ref)} references for {len(self.e0)} cached pairs: call restrict(index) first")
        e_ref = self.metric.embed(x_ref)
        return torch.stack([self.metric.distance(e_ref, self.e1), self.metric.distance(e_ref, self.e0)], dim=1)


def twoafc_labels(p: Tensor) -> Tensor:
    """round(p) as class labels; p == 0.5 triplets have no wrong answer and are never attacked."""
    return (p > 0.5).long()
