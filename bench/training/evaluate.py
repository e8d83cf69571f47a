"""The 2AFC score of a model during training (on the eval set after each epoch, or standalone)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from lipsim_bench.evaluations.twoafc import twoafc_score


def metric_distance(model: nn.Module, e_a: Tensor, e_b: Tensor) -> Tensor:
    """The model's own ``distance`` when it has one, else 1 - cosine (the PerceptualMetric default)."""
    distance = getattr(model, "distance", None)
    if callable(distance):
        return distance(e_a, e_b)
    return 1.0 - F.cosine_similarity(e_a.flatten(1), e_b.flatten(1), dim=1)


@torch.no_grad()
def evaluate_2afc(
    model: nn.Module, dataset: Dataset, *, batch_size: int = 64, device: torch.device | str = "cpu", workers: int = 0
) -> float:
    """2AFC score (%) of ``model`` on a 2AFC dataset, in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    d0s, d1s, ps = [], [], []
    try:
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers):
            ref, x0, x1 = (batch[k].to(device) for k in ("ref", "x0", "x1"))
            e_ref, e0, e1 = model.embed(ref), model.embed(x0), model.embed(x1)
            d0s.append(metric_distance(model, e_ref, e0).float().cpu())
            d1s.append(metric_distance(model, e_ref, e1).float().cpu())
            ps.append(batch["p"].float())
    finally:
        model.train(was_training)
    return twoafc_score(torch.cat(d0s), torch.cat(d1s), torch.cat(ps))
