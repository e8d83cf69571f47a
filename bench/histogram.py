"""Histograms of d(x, x + delta) under the direct attack: how far eps moves each metric's embedding.

The LipSim paper's figure: an unconstrained metric can be pushed to large distances by a small
perturbation, a 1-Lipschitz one cannot. Data flows from records: the runner stores each metric's
per-image distances, this module draws them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from attacks.direct import DirectAttack  # noqa: E402
from metrics import PerceptualMetric  # noqa: E402

DEFAULT_HISTOGRAM_EPS = {"sample": 0.5, "night": 1.0}


def direct_distances(metric: PerceptualMetric, loader: DataLoader, device: torch.device, attack: DirectAttack, desc: str) -> pd.DataFrame:
    """d(x, x + delta) for every reference image of the loader."""
    parts = []
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False):
        _, distance = attack(metric, batch["ref"].to(device))
        parts.append(pd.DataFrame({"id": list(batch["id"]), "group": list(batch["group"]), "eps": attack.eps, "distance": distance.double().cpu().numpy()}))
    return pd.concat(parts, ignore_index=True)


def plot_histograms(frames: dict[str, pd.DataFrame], path: Path, eps: float) -> None:
    """One panel per metric, shared x axis from 0 to the largest distance seen (PNG and PDF)."""
    fig, axes = plt.subplots(1, len(frames), figsize=(3.2 * len(frames), 2.6), sharex=True, squeeze=False)
    top = max(float(f["distance"].max()) for f in frames.values()) or 1.0
    for ax, (metric, frame) in zip(axes[0], frames.items()):
        ax.hist(frame["distance"], bins=30, range=(0.0, top), color="tab:blue", alpha=0.85)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel(r"$d(x, x+\delta)$")
        ax.axvline(float(frame["distance"].median()), color="black", lw=1, ls="--", label="median")
    axes[0][0].set_ylabel("images")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(rf"direct attack, $\ell_2$ $\epsilon$ = {eps:g}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=150)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
