"""Histograms of d(x, x + delta) under the direct attack: how far eps moves each metric's embedding.

The LipSim paper's figure: an unconstrained metric can be pushed to large distances by a small
perturbation, a 1-Lipschitz one cannot. Data flows from records: the runner stores each metric's
per-image distances, this module draws them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from attacks.direct import DirectAttack
from bench.evaluations import progress
from bench.plots import histogram_figure, save_figure
from metrics import PerceptualMetric

DEFAULT_HISTOGRAM_EPS = {"sample": 0.5, "night": 1.0}


def direct_distances(metric: PerceptualMetric, loader: DataLoader, device: torch.device, attack: DirectAttack, desc: str) -> pd.DataFrame:
    """d(x, x + delta) for every reference image of the loader."""
    parts = []
    for batch in progress(loader, desc):
        _, distance = attack(metric, batch["ref"].to(device))
        parts.append(pd.DataFrame({"position": batch["index"].numpy(), "id": list(batch["id"]), "group": list(batch["group"]), "eps": attack.eps, "distance": distance.double().cpu().numpy()}))
    return pd.concat(parts, ignore_index=True)


def plot_histograms(frames: dict[str, pd.DataFrame], path: Path, eps: float, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """One panel per metric, shared x axis from 0 to the largest distance seen; drawn by bench.plots."""
    return save_figure(histogram_figure(frames, eps), path, formats)
