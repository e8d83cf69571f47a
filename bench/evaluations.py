"""Evaluations of a metric on a 2AFC loader, each returning per-triplet rows.

Every evaluation returns a frame with columns evaluation, norm, eps, group, id, p, d0, d1,
agreement, correct (+ its own, e.g. radius); scores are derived from those rows only.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from attacks import list_attacks
from attacks.base import Attack, ThreatModel
from attacks.registry import get_attack
from attacks.twoafc import TwoAFCClassifier, twoafc_labels
from bench.certify import certified_agreement, certified_radius, paper_radius
from bench.errors import BenchError
from bench.scoring import twoafc_agreement
from metrics import PerceptualMetric

if TYPE_CHECKING:
    from bench.runner import RunConfig

#: The paper's certified radii (l2, images in [0, 1]).
DEFAULT_CERTIFIED_EPS: tuple[float, ...] = (36 / 255, 72 / 255, 108 / 255)

#: Attack radii per dataset. An l2 radius means less at higher resolution: the paper's 0.5..3 are for
#: 3x224x224 inputs; the same per-pixel (RMS) change on 3x64x64 is 3.5x smaller. For the 64x64 sample
#: set we take 0.25..2, i.e. the paper's range and a step beyond it in RMS terms.
#: l-inf radii do not depend on resolution: 4/255 is Croce et al.'s, 2/255 and 8/255 bracket it.
DEFAULT_ATTACK_EPS: dict[tuple[str, str], tuple[float, ...]] = {
    ("sample", "l2"): (0.25, 0.5, 1.0, 2.0),
    ("night", "l2"): (0.5, 1.0, 2.0, 3.0),
}
FALLBACK_ATTACK_EPS: dict[str, tuple[float, ...]] = {"l2": (0.5, 1.0, 2.0, 3.0), "linf": (2 / 255, 4 / 255, 8 / 255)}


def default_attack_eps(dataset: str, norm: str) -> tuple[float, ...]:
    """The attack radii a run uses when none are given."""
    return DEFAULT_ATTACK_EPS.get((dataset, norm), FALLBACK_ATTACK_EPS[norm])


@dataclass
class EmbeddedBatch:
    """One batch with its embeddings and distances, computed once and shared by evaluations."""

    batch: dict
    e_ref: Tensor
    e0: Tensor
    e1: Tensor
    d0: Tensor
    d1: Tensor


def loader_triplets(loader: DataLoader) -> int | None:
    """How many triplets this process's loader yields (its shard), for progress bars."""
    sampler = loader.batch_sampler
    return sum(len(b) for b in sampler) if sampler is not None and hasattr(sampler, "__iter__") else None


def progress(loader: DataLoader, desc: str) -> Iterator[dict]:
    """Batches with a per-unit bar counting triplets (rate and ETA in triplets/s)."""
    with tqdm(total=loader_triplets(loader), desc=desc, unit="triplet", leave=False, dynamic_ncols=True) as bar:
        for batch in loader:
            yield batch
            bar.update(len(batch["id"]))


def embedded_batches(metric: PerceptualMetric, loader: DataLoader, device: torch.device, desc: str) -> Iterator[EmbeddedBatch]:
    """Embed ref, x0, x1 in one forward pass per batch and check the distances are finite."""
    for batch in progress(loader, desc):
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
            "position": item.batch["index"].numpy(),  # dropped by the runner after merging shards
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


def natural(metric: PerceptualMetric, loader: DataLoader, device: torch.device, config: "RunConfig", desc: str, threat: ThreatModel | None = None) -> pd.DataFrame:
    """The 2AFC agreement of the metric's decisions on clean triplets."""
    parts = [
        _rows("natural", None, np.nan, item, twoafc_agreement(item.d0, item.d1, item.batch["p"]))
        for item in embedded_batches(metric, loader, device, desc)
    ]
    return pd.concat(parts, ignore_index=True)


def certified(metric: PerceptualMetric, loader: DataLoader, device: torch.device, config: "RunConfig", desc: str, threat: ThreatModel | None = None) -> pd.DataFrame:
    """Certified agreement at each eps from sound radii; also the paper's formula, for comparison."""
    if metric.lipschitz is None:
        raise BenchError(f"metric {desc.split()[0]!r} has no Lipschitz bound, so it cannot be certified")
    eps_list = config.certify_eps or list(DEFAULT_CERTIFIED_EPS)
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


def build_attack(name: str, norm: str, eps: float, config: "RunConfig") -> Attack:
    """The registered attack with the run's settings (those its constructor takes)."""
    cls = get_attack(name)
    accepted = inspect.signature(cls.__init__).parameters
    # early_stop drops fooled triplets from the batch: the same robust score, less work
    options = {"steps": config.steps, "restarts": config.restarts, "seed": config.seed, "early_stop": True}
    return cls(norm=norm, eps=eps, **{k: v for k, v in options.items() if k in accepted})


def attack_evaluation(name: str) -> Callable[..., pd.DataFrame]:
    """An evaluation that attacks the reference of every initially correct triplet at one eps."""

    def run(metric: PerceptualMetric, loader: DataLoader, device: torch.device, config: "RunConfig", desc: str, threat: ThreatModel | None = None) -> pd.DataFrame:
        assert threat is not None, "attack units are per threat model"
        attack = build_attack(name, threat.norm, threat.eps, config)
        batches = embedded_batches(metric, loader, device, f"{desc} {threat.norm} eps {threat.eps:g}")
        parts = [_attack_batch(metric, attack, item, device, threat.norm, threat.eps) for item in batches]
        return pd.concat(parts, ignore_index=True)

    return run


def _attack_batch(metric: PerceptualMetric, attack: Attack, item: EmbeddedBatch, device: torch.device, norm: str, eps: float) -> pd.DataFrame:
    """Attack the correct triplets of one batch; rows carry the adversarial distances."""
    p = item.batch["p"]
    correct = twoafc_agreement(item.d0, item.d1, p) > 0.5  # p == 0.5 is never "correct": nothing to flip
    d0, d1 = item.d0.clone(), item.d1.clone()
    delta_norm = torch.zeros(len(p), dtype=torch.float64)
    idx = correct.nonzero().flatten()
    if idx.numel():
        ref = item.batch["ref"][idx].to(device)
        classifier = TwoAFCClassifier(metric, item.e0[idx].to(device), item.e1[idx].to(device))
        x_adv = attack(classifier, ref, twoafc_labels(p[idx]).to(device))  # checked: ||delta|| <= eps, [0, 1], finite
        with torch.no_grad():
            logits = classifier(x_adv).cpu()
        d1[idx], d0[idx] = logits[:, 0].to(d1.dtype), logits[:, 1].to(d0.dtype)
        delta = (x_adv - ref).flatten(1)
        delta_norm[idx] = (delta.norm(dim=1) if norm == "l2" else delta.abs().amax(dim=1)).double().cpu()
    flipped = correct & ~(twoafc_agreement(d0, d1, p) > 0.5)
    _check_certificate(metric, item, flipped, norm, delta_norm)
    adversarial = EmbeddedBatch(item.batch, item.e_ref, item.e0, item.e1, d0, d1)
    return _rows(attack.name, norm, eps, adversarial, twoafc_agreement(d0, d1, p), delta_norm=delta_norm, flipped=flipped)


def _check_certificate(metric: PerceptualMetric, item: EmbeddedBatch, flipped: Tensor, norm: str, delta_norm: Tensor) -> None:
    """Every flip is an empirical radius (||delta||) that must not be below the certified one.

    A flip inside a certified l2 radius means a broken certificate or attack: never a number.
    """
    if norm != "l2" or metric.lipschitz is None or not flipped.any():
        return
    lipschitz = metric.lipschitz_for(*item.batch["ref"].shape[-2:])
    radius = certified_radius(metric.distance_kind, item.e_ref, item.e0, item.e1, lipschitz)
    violated = flipped & (radius > delta_norm * (1 + 1e-6) + 1e-9)
    if violated.any():
        i = int(violated.nonzero()[0])
        raise BenchError(
            f"certificate violated: triplet {item.batch['id'][i]} was flipped by a perturbation of l2 norm "
            f"{float(delta_norm[i]):.6g} inside its certified radius {float(radius[i]):.6g}; the Lipschitz bound of this metric is wrong"
        )


def can_certify(metric: PerceptualMetric) -> bool:
    return metric.lipschitz is not None


@dataclass(frozen=True)
class EvaluationSpec:
    """An evaluation, the run settings that change its numbers, and which metrics it applies to.

    ``per_eps`` evaluations are one unit per threat model (attacks: each eps costs a full attack).
    """

    run: Callable[..., pd.DataFrame]
    settings: tuple[str, ...] = ()
    applies_to: Callable[[PerceptualMetric], bool] = lambda metric: True
    per_eps: bool = False


EVALUATIONS: dict[str, EvaluationSpec] = {
    "natural": EvaluationSpec(natural),
    "certified": EvaluationSpec(certified, settings=("certify_eps",), applies_to=can_certify),
}
for _name in list_attacks():
    # batch_size is part of an attack's key: the random start is drawn per batch
    EVALUATIONS[_name] = EvaluationSpec(attack_evaluation(_name), settings=("steps", "restarts", "batch_size"), per_eps=True)
