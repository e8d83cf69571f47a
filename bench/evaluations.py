"""Evaluations of a metric on a 2AFC loader, each returning per-triplet rows.

Every evaluation returns a frame with columns evaluation, norm, eps, group, id, p, d0, d1,
agreement, correct (+ its own, e.g. radius); scores are derived from those rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bench.certify import certified_agreement, certified_radius, paper_radius
from bench.errors import BenchError
from bench.scoring import twoafc_agreement
from metrics import PerceptualMetric

if TYPE_CHECKING:
    from bench.runner import RunConfig

#: The paper's certified radii (l2, images in [0, 1]).
DEFAULT_CERTIFIED_EPS: tuple[float, ...] = (36 / 255, 72 / 255, 108 / 255)


@dataclass
class EmbeddedBatch:
    """One batch with its embeddings and distances, computed once and shared by evaluations."""

    batch: dict
    e_ref: Tensor
    e0: Tensor
    e1: Tensor
    d0: Tensor
    d1: Tensor


def embedded_batches(metric: PerceptualMetric, loader: DataLoader, device: torch.device, desc: str) -> Iterator[EmbeddedBatch]:
    """Embed ref, x0, x1 in one forward pass per batch and check the distances are finite."""
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False):
        ref, x0, x1 = (batch[k].to(device) for k in ("ref", "x0", "x1"))
        with torch.no_grad():
            e_ref, e0, e1 = metric.embed(torch.cat([ref, x0, x1])).chunk(3)
            d0, d1 = metric.distance(e_ref, e0).cpu(), metric.distance(e_ref, e1).cpu()
        bad = ~(torch.isfinite(d0) & torch.isfinite(d1))
        if bad.any():
            first = batch["id"][int(bad.nonzero()[0])]
            raise BenchError(f"metric {desc.split()[0]!r} gave a non-finite distance (NaN/inf) on triplet {first}; check its weights")
        yield EmbeddedBatch(batch, e_ref.cpu(), e0.cpu(), e1.cpu(), d0, d1)


def _rows(evaluation: str, norm: str | None, eps: float, item: EmbeddedBatch, agreement: Tensor, **extra: Tensor) -> pd.DataFrame:
    natural_agreement = twoafc_agreement(item.d0, item.d1, item.batch["p"])
    return pd.DataFrame(
        {
            "evaluation": evaluation,
            "norm": norm,
            "eps": eps,
            "group": list(item.batch["group"]),
            "id": list(item.batch["id"]),
            "p": item.batch["p"].double().numpy(),
            "d0": item.d0.double().numpy(),
            "d1": item.d1.double().numpy(),
            "agreement": agreement.double().numpy(),
            "correct": (natural_agreement > 0.5).numpy(),
            **{k: v.double().numpy() for k, v in extra.items()},
        }
    )


def natural(metric: PerceptualMetric, loader: DataLoader, device: torch.device, config: "RunConfig", desc: str) -> pd.DataFrame:
    """The 2AFC agreement of the metric's decisions on clean triplets."""
    parts = [
        _rows("natural", None, np.nan, item, twoafc_agreement(item.d0, item.d1, item.batch["p"]))
        for item in embedded_batches(metric, loader, device, desc)
    ]
    return pd.concat(parts, ignore_index=True)


def certified(metric: PerceptualMetric, loader: DataLoader, device: torch.device, config: "RunConfig", desc: str) -> pd.DataFrame:
    """Certified agreement at each eps from sound radii; also the paper's formula, for comparison."""
    if metric.lipschitz is None:
        raise BenchError(f"metric {desc.split()[0]!r} has no Lipschitz bound, so it cannot be certified")
    eps_list = config.eps or list(DEFAULT_CERTIFIED_EPS)
    parts = []
    for item in embedded_batches(metric, loader, device, desc):
        lipschitz = metric.lipschitz_for(*item.batch["ref"].shape[-2:])  # includes any resize in embed
        radius = certified_radius(metric.distance_kind, item.e_ref, item.e0, item.e1, lipschitz)
        extra = {"radius": radius, "ref_norm": item.e_ref.flatten(1).double().norm(dim=1)}
        if metric.distance_kind == "cosine":
            extra["radius_paper"] = paper_radius(item.d0, item.d1, item.e0, item.e1, lipschitz)
        agreement = twoafc_agreement(item.d0, item.d1, item.batch["p"])
        for eps in eps_list:
            parts.append(_rows("certified", "l2", eps, item, certified_agreement(agreement, item.batch["p"], radius, eps), **extra))
    return pd.concat(parts, ignore_index=True)


def can_certify(metric: PerceptualMetric) -> bool:
    return metric.lipschitz is not None


@dataclass(frozen=True)
class EvaluationSpec:
    """An evaluation, the run settings that change its numbers, and which metrics it applies to."""

    run: Callable[[PerceptualMetric, DataLoader, torch.device, "RunConfig", str], pd.DataFrame]
    settings: tuple[str, ...] = ()
    applies_to: Callable[[PerceptualMetric], bool] = lambda metric: True


EVALUATIONS: dict[str, EvaluationSpec] = {
    "natural": EvaluationSpec(natural),
    "certified": EvaluationSpec(certified, settings=("eps",), applies_to=can_certify),
}
