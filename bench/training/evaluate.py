"""The 2AFC score of a model during training (on the eval set after each epoch, or standalone), and which split.

Scores seen during training choose recipes (epochs, lr, augmentation), so they are read on a validation split
when the dataset has one: a recipe chosen on the test split leaves no fair test number.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from lipsim_bench.evaluations.twoafc import twoafc_score

#: The name a dataset's validation split has (NIGHT's and the bundled sample set's).
VALIDATION_SPLIT = "val"


def resolve_eval_split(dataset: str, split: str | None, option: str = "--eval-split") -> tuple[str, str | None]:
    """The split scored after each epoch, and the one-line warning printed (to stderr) when it is the test split.

    No ``split``: the dataset's validation split when it has one (``sample``, ``night``), else the split the
    benchmark scores (its default, test) with the warning. The warning also comes when test is asked for."""
    from lipsim_bench.datasets import parse_dataset_arg

    family, _ = parse_dataset_arg(dataset)
    has_val = VALIDATION_SPLIT in family.splits
    if split is None:
        split = VALIDATION_SPLIT if has_val else family.default_split
    if split != family.default_split:
        return split, None
    why = (
        f"use {option} {VALIDATION_SPLIT}"
        if has_val
        else f"{family.name} has no {VALIDATION_SPLIT} split; hold out part of the training data to choose on"
    )
    line = (
        f"warning: training scores {family.name}'s {split} split after each epoch, the one the benchmark scores: "
        f"a recipe chosen on it is not a fair test number; {why}"
    )
    print(line, file=sys.stderr)
    return split, line


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
