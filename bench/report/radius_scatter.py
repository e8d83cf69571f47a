"""radius_scatter.png: per triplet, the certified l2 radius against the smallest flipping perturbation a
minimum-norm attack (FMN, registered as ``fmn``) found, a panel per certified metric.

A minimum-norm attack's flipping perturbation is an upper bound of the true radius, the certificate a lower
one: every point must lie on or above y = x, and for pixel-l2 (exact certificate) on it, a sanity check of
both. APGD's fixed-eps grid would only say "between two grid radii", so it is not used. Triplets FMN never
flipped up to its largest eps sit in a grey band above the panel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lipsim_bench.formatting import format_eps
from lipsim_bench.report.figure_facts import Facts, attack_words, figure_title
from lipsim_bench.report.figure_style import STYLE, metric_styles, panel_grid, shared_legend
from lipsim_bench.report.plot_data import as_bool, attacked_ids, base_certificate, certified_rows, kinds, metric_order

#: The minimum-norm attack the scatter reads.
MIN_NORM_ATTACK = "fmn"
NO_MIN_NORM = (
    "radius_scatter: not drawn, the run has no minimum-norm attack (its empirical radius is the smallest "
    "perturbation FMN finds); add fmn, e.g. --evaluations natural,certified,fmn"
)

CASCADED = (
    "radius_scatter: not drawn, fmn ran in a cascade after {after} (--set fmn.after=...), so its rows hold those "
    "attacks' flips at their radii, not FMN's smallest perturbations; run fmn on its own, e.g. --evaluations "
    "natural,certified,fmn"
)


def cascade_of(scores: pd.DataFrame | None) -> str | None:
    """The attacks a cascaded FMN ran after (its triplet rows then carry their flips and norms), or None."""
    if scores is None or "settings" not in scores.columns:
        return None
    for text in scores.loc[scores["evaluation"] == MIN_NORM_ATTACK, "settings"].dropna():
        try:
            after = json.loads(text).get("options", {}).get("after")
        except (TypeError, ValueError, AttributeError):
            continue
        if after:
            return after if isinstance(after, str) else ", ".join(map(str, after))
    return None


@dataclass
class RadiusPanel:
    """One certified metric's radii over the triplets the minimum-norm attack tried (index id)."""

    metric: str
    certified: pd.Series
    empirical: pd.Series
    never_flipped: pd.Index
    largest_eps: float


def min_norm_rows(triplets: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The l2 rows of the minimum-norm attack (of one metric)."""
    rows = triplets[
        (kinds(triplets) == "attack") & (triplets["evaluation"] == MIN_NORM_ATTACK) & (triplets["norm"] == "l2")
    ]
    return rows if metric is None else rows[rows["metric"] == metric]


def empirical_radii(triplets: pd.DataFrame, metric: str) -> pd.Series:
    """Smallest l2 perturbation the minimum-norm attack flipped each triplet with, over its eps (index id).

    Triplets never flipped are absent: the attack found no upper bound of their radius.
    """
    if "delta_norm" not in triplets.columns or "flipped" not in triplets.columns:
        return pd.Series(dtype=np.float64, name="empirical_radius")
    rows = min_norm_rows(triplets, metric)
    rows = rows[as_bool(rows["flipped"])]
    return rows.groupby("id", sort=False)["delta_norm"].min().astype(np.float64).rename("empirical_radius")


def radius_panel(triplets: pd.DataFrame, metric: str) -> RadiusPanel | None:
    """The scatter's data for a metric, or None without certified rows or minimum-norm attack rows."""
    attacks = min_norm_rows(triplets, metric)
    evaluation = base_certificate(triplets, metric)  # a smoothed radius says nothing about attacks on the metric itself
    rows = certified_rows(triplets, metric, evaluation) if evaluation is not None else triplets.iloc[:0]
    if rows.empty or attacks.empty:
        return None
    certified = rows.set_index("id")["radius"].astype(np.float64)
    empirical = empirical_radii(triplets, metric)
    tried = certified.index.intersection(attacked_ids(triplets, metric)).union(
        certified.index.intersection(empirical.index)
    )
    return RadiusPanel(
        metric,
        certified[tried],
        empirical[empirical.index.intersection(tried)],
        tried.difference(empirical.index),
        float(attacks["eps"].max()),
    )


def _axis_range(values: np.ndarray) -> tuple[bool, float, float]:
    """(log, low, high): log when the positive values span more than two decades."""
    positive = values[values > 0]
    if positive.size == 0:
        return False, 0.0, 1.0
    log = bool(positive.max() / positive.min() > 100)
    return log, (positive.min() / 1.5 if log else 0.0), positive.max() * (1.3 if log else 1.08)


def _scatter_panel(ax: Axes, panel: RadiusPanel, style: dict[str, object]) -> None:
    """Certified (x) against empirical (y) radius; never-flipped triplets as triangles in a band above.

    A point below y = x would be a flip inside a certified radius (a broken certificate): counted in the corner.
    """
    x = panel.certified[panel.empirical.index].to_numpy()
    y = panel.empirical.to_numpy()
    below = int((y < x * (1 - 1e-6) - 1e-9).sum())
    log, low, high = _axis_range(np.concatenate([x, y, panel.certified.to_numpy(), [panel.largest_eps]]))
    band, top = (high * 1.3, high * 1.7) if log else (high * 1.06, high * 1.12)
    ax.axhspan(high, top, color="0.92", lw=0, zorder=0)
    ax.plot([low, high], [low, high], color="black", lw=0.8, ls=":")
    ax.axhline(panel.largest_eps, color="gray", lw=0.8, ls="--")
    ax.plot(np.maximum(x, low), y, ls="none", marker=style["marker"], ms=3, alpha=0.75, color=style["color"])
    kept = np.maximum(panel.certified[panel.never_flipped].to_numpy(), low)
    ax.plot(kept, np.full(len(kept), band), ls="none", marker="^", ms=4, alpha=0.7, color="gray")
    if log:
        ax.set(xscale="log", yscale="log")
    ax.set(xlim=(low, high), ylim=(low, top))
    counts = f"{len(x)} flipped, {len(kept)} never\nbelow y = x: {below}"
    ax.text(0.97, 0.03, counts, transform=ax.transAxes, ha="right", va="bottom", color="red" if below else "black")


def radius_scatter_figure(
    triplets: pd.DataFrame,
    scores: pd.DataFrame | None = None,
    facts: Facts | None = None,
    title: str | None = None,
) -> Figure | None:
    """Per triplet, the certified against the smallest flipping l2 radius FMN found, a panel per certified metric."""
    if cascade_of(scores) is not None:  # its rows are other attacks' flips: the figure would claim what FMN never found
        return None
    order = metric_order(triplets)
    styles = metric_styles(order)
    panels = [p for p in (radius_panel(triplets, m) for m in order) if p is not None]
    if not panels:
        return None
    largest = max(p.largest_eps for p in panels)
    with matplotlib.rc_context(STYLE):
        fig, axes = panel_grid(len(panels), 2.4)
        for ax, panel in zip(axes, panels):
            _scatter_panel(ax, panel, styles[panel.metric])
            ax.set(
                title=panel.metric,
                xlabel=r"certified radius ($\ell_2$)",
                ylabel=r"smallest flip found ($\ell_2$)",
            )
        extra = [
            (Line2D([], [], color="black", lw=0.8, ls=":"), "y = x (an exact certificate)"),
            (Line2D([], [], ls="none", marker="o", ms=3, color="0.3"), "a triplet FMN flipped"),
            (Line2D([], [], ls="none", marker="^", ms=4, color="gray"), "never flipped (grey band)"),
            (Line2D([], [], color="gray", lw=0.8, ls="--"), rf"FMN's largest $\epsilon$ ({format_eps(largest)})"),
        ]
        shared_legend(fig, axes, extra)
        headline = (
            "Certified radius against the smallest flipping perturbation "
            f"{attack_words(MIN_NORM_ATTACK, scores)} found ($\\ell_2$, images in [0, 1])"
        )
        fig.suptitle(figure_title(headline, facts or Facts(n=int(triplets["id"].nunique())), fig.get_figwidth(), title))
    return fig


def has_min_norm(triplets: pd.DataFrame) -> bool:
    return not min_norm_rows(triplets).empty
