"""Publication figures from a run folder's CSVs (scores.csv, triplets.csv, histogram.csv).

Figures are rebuilt from the files a run writes, never from models, so anyone holding a run folder can
redraw them (examples.png also reads records/' adversarial examples and the dataset). Each figure is
skipped when its data is absent. The certified curve is recomputed per triplet with the scoring's own
functions and checked against the table: a marker off its curve would mean the figure and the table
disagree, so ``plot_run`` refuses to draw it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lipsim_bench.formatting import format_eps
from lipsim_bench.report.examples import ExampleOptions
from lipsim_bench.report.examples_figure import run_examples_figure
from lipsim_bench.report.figure_style import (
    LINE_STYLES,
    ONE_COLUMN_IN,
    STYLE,
    eps_axis_label,
    eps_tick_labels,
    metric_styles,
    norm_label,
    panel_grid,
    save_figure,
    shared_legend,
)
from lipsim_bench.report.plot_data import (
    attacked_ids,
    base_certificate,
    certificate_curves,
    certified_curve,
    certified_points,
    certified_rows,
    check_certified_points,
    empirical_radii,
    histogram_bounds,
    kinds,
    metric_order,
    read_optional,
    triplets_of_split,
)
from lipsim_bench.report.tables import certificate_order, headline_split

# --- figures ----------------------------------------------------------------------------------


def robustness_figure(scores: pd.DataFrame, split: str) -> Figure | None:
    """2AFC score against attack eps, a panel per (attack, norm), natural score at eps = 0."""
    rows = scores[scores["split"] == split]
    attacks = rows[kinds(rows) == "attack"]
    if attacks.empty:
        return None
    panels = list(dict.fromkeys(zip(attacks["evaluation"], attacks["norm"])))
    styles = metric_styles(metric_order(scores))
    natural = rows[kinds(rows) == "clean"].drop_duplicates("metric").set_index("metric")["score"]
    with matplotlib.rc_context(STYLE):
        fig, axes = panel_grid(len(panels), 2.3)
        for ax, (attack, norm) in zip(axes, panels):
            part = attacks[(attacks["evaluation"] == attack) & (attacks["norm"] == norm)]
            for metric, line in part.groupby("metric", sort=False):
                line = line.sort_values("eps")
                eps, score = line["eps"].to_list(), line["score"].to_list()
                if metric in natural.index:
                    eps, score = [0.0] + eps, [float(natural[metric])] + score
                ax.plot(eps, score, label=str(metric), **styles[str(metric)])
            ticks = [0.0] + sorted(float(e) for e in part["eps"].unique())
            ax.set_xticks(ticks, eps_tick_labels(ticks, ax.get_position().width * fig.get_figwidth()))
            ax.axhline(50.0, color="gray", ls="--", lw=0.8, label="chance (50%)", zorder=1)
            ax.set(
                ylim=(0, 100),
                xlabel=eps_axis_label(str(norm)),
                ylabel="2AFC score (%)",
                title=f"{attack}, {norm_label(str(norm))}",
            )
            ax.grid(alpha=0.3, lw=0.5)
        shared_legend(fig, axes)
    return fig


def certified_figure(scores: pd.DataFrame | None, triplets: pd.DataFrame, split: str) -> Figure | None:
    """Certified score against l2 radius, the exact step curve per metric and certificate, with the table's
    points as markers. Up to two certificates share one panel (a line style each); more (smoothing at
    several sigmas beside the Lipschitz certificate) get a panel each, on one radius axis, so a metric keeps
    its colour and every panel stays readable."""
    order = metric_order(triplets)
    curves = sorted(
        certificate_curves(triplets), key=lambda curve: order.index(curve[0])
    )  # stable: a metric's curves together
    if not curves:
        return None
    styles = metric_styles(metric_order(scores, triplets))
    evaluations = sorted(dict.fromkeys(e for _, e in curves), key=certificate_order)
    dashes = {e: LINE_STYLES[i % len(LINE_STYLES)] for i, e in enumerate(evaluations)}
    points = (
        certified_points(scores, split)
        if scores is not None
        else pd.DataFrame(columns=["metric", "evaluation", "eps", "score"])
    )
    panels = [evaluations] if len(evaluations) <= 2 else [[e] for e in evaluations]
    top = max(float(certified_rows(triplets, m, e)["radius"].max()) for m, e in curves) or 1.0
    if len(panels) > 1 and len(points):  # one radius axis for every panel, where the table's radii are (a pixel
        top = min(top, 2.5 * float(points["eps"].max()))  # metric's radii of 10 would squash everything else)
    with matplotlib.rc_context(STYLE):
        if len(panels) == 1:
            fig = Figure(figsize=(ONE_COLUMN_IN, 2.6), layout="constrained")
            axes = [fig.subplots()]
        else:
            fig, axes = panel_grid(len(panels), 2.3)
        for ax, shown in zip(axes, panels):
            mine = points[points["evaluation"].isin(shown)]
            for metric, evaluation in [c for c in curves if c[1] in shown]:
                _certified_curve(
                    ax,
                    triplets,
                    points,
                    metric,
                    evaluation,
                    top,
                    styles[metric],
                    dashes[evaluation] if len(shown) > 1 else "-",
                    metric if len(evaluations) == 1 or len(shown) == 1 else f"{metric} {evaluation}",
                )
            for eps in sorted(mine["eps"].unique()):
                ax.axvline(float(eps), color="gray", lw=0.5, ls=":")
            xlabel = (
                r"certified radius $\epsilon$ ($\ell_2$, images in [0, 1])"
                if len(panels) == 1
                else r"certified radius $\epsilon$ ($\ell_2$)"
            )
            ax.set(xlim=(0, top * 1.05), ylim=(0, 100), xlabel=xlabel, ylabel="certified 2AFC score (%)")
            if len(panels) > 1:
                ax.set_title(shown[0])
            ax.grid(alpha=0.3, lw=0.5)
        if not points.empty:
            axes[0].plot(
                [],
                [],
                ls="none",
                marker="o",
                color="black",
                markerfacecolor="white",
                label="hollow markers: scores.csv",
            )
        shared_legend(fig, axes)
    return fig


def _certified_curve(
    ax: Axes,
    triplets: pd.DataFrame,
    points: pd.DataFrame,
    metric: str,
    evaluation: str,
    top: float,
    style: dict[str, object],
    dash: str,
    label: str,
) -> None:
    """One metric's certified step curve for one certificate, its table points, and its legend entry."""
    radii = np.unique(
        np.concatenate(
            [np.linspace(0.0, top * 1.05, 512), certified_rows(triplets, metric, evaluation)["radius"].to_numpy()]
        )
    )
    line = {"color": style["color"], "ls": dash}
    ax.plot(radii, certified_curve(triplets, metric, radii, evaluation), drawstyle="steps-post", **line)
    mine = points[(points["metric"] == metric) & (points["evaluation"] == evaluation)]
    marker = {"marker": style["marker"], "color": style["color"], "markerfacecolor": "white", "markeredgewidth": 1.0}
    ax.plot(mine["eps"], mine["score"], ls="none", zorder=3, **marker)
    ax.plot([], [], label=label, **({**marker, "ls": dash} if not mine.empty else line))  # legend: curve + its marker


def histogram_figure(frames: dict[str, pd.DataFrame], eps: float) -> Figure:
    """d(x, x + delta) under the direct attack: a panel per metric, with the certified bound beside it where
    the run folder has one (``bound``: a line when it is the same for every triplet, as L eps is for l2
    distances, else a second histogram of per-triplet bounds).

    Each panel has its own x axis from 0 to the larger of its found distances and bounds: distances of
    different metrics are on different scales (pixels, 1 - cos), and one shared axis flattened the
    smaller ones into a single bar, found and bound indistinguishable.
    """
    with matplotlib.rc_context(STYLE):
        fig, axes = panel_grid(len(frames), 1.9)
        for ax, (metric, frame) in zip(axes, frames.items()):
            bound = histogram_bounds(frame)
            top = max(float(frame["distance"].max()), float(bound.max()) if len(bound) else 0.0) or 1.0
            ax.hist(
                frame["distance"],
                bins=30,
                range=(0.0, top),
                color="tab:blue",
                alpha=0.85,
                label="found (direct attack)",
            )
            ax.axvline(float(frame["distance"].median()), color="black", lw=1, ls="--", label="median found")
            _draw_bound(ax, bound, top)
            ax.set(
                title=metric, xlabel=r"$d(x, x+\delta)$ (the metric's distance)", ylabel="images", xlim=(0, top * 1.02)
            )
        shared_legend(fig, axes)
        fig.suptitle(rf"direct attack, $\ell_2$ $\epsilon$ = {format_eps(eps)} (images in [0, 1])")
    return fig


def _draw_bound(ax: Axes, bound: pd.Series, top: float) -> None:
    """The certified bound of one panel (nothing without one)."""
    if bound.empty:
        return
    label = r"certified bound ($L\epsilon$)"
    if np.allclose(bound.to_numpy(), bound.iloc[0], rtol=1e-9, atol=0.0):
        ax.axvline(float(bound.iloc[0]), color="tab:red", lw=1.4, label=label)
    else:
        ax.hist(bound, bins=30, range=(0.0, top), histtype="step", color="tab:red", lw=1.2, label=label)


def histogram_frames(histogram: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], float]:
    """histogram.csv (id, group, eps, distance, metric) as the per-metric frames plot_histograms takes."""
    frames = {str(m): part for m, part in histogram.groupby("metric", sort=False)}
    return frames, float(histogram["eps"].max())


def diagnostic_figure(csv_name: str, frame: pd.DataFrame) -> Figure | None:
    """The figure drawn beside a diagnostic evaluation's CSV in the run folder (None: CSV only)."""
    if csv_name == "histogram.csv" and not frame.empty:
        return histogram_figure(*histogram_frames(frame))
    return None


@dataclass
class RadiusPanel:
    """One certified metric's radii over the triplets its l2 attacks tried (index id)."""

    metric: str
    certified: pd.Series
    empirical: pd.Series
    never_flipped: pd.Index
    largest_eps: float


def radius_panel(triplets: pd.DataFrame, metric: str) -> RadiusPanel | None:
    """The scatter's data for a metric, or None without certified rows or l2 attack rows."""
    attacks = triplets[(triplets["metric"] == metric) & (kinds(triplets) == "attack") & (triplets["norm"] == "l2")]
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


def _scatter_panel(ax: Axes, panel: RadiusPanel, colour: str) -> None:
    """Certified (x) against empirical (y) radius; never-flipped triplets as triangles in a band above.

    A point below y = x would be a flip inside a certified radius (a broken certificate): counted
    in the corner. Never-flipped triplets have no empirical radius, only "above the largest eps".
    """
    x = panel.certified[panel.empirical.index].to_numpy()
    y = panel.empirical.to_numpy()
    below = int((y < x * (1 - 1e-6) - 1e-9).sum())
    log, low, high = _axis_range(np.concatenate([x, y, panel.certified.to_numpy(), [panel.largest_eps]]))
    band, top = (high * 1.3, high * 1.7) if log else (high * 1.06, high * 1.12)
    ax.axhspan(high, top, color="0.92", lw=0, zorder=0)
    ax.plot([low, high], [low, high], color="black", lw=0.8, ls=":", label="y = x")
    ax.axhline(
        panel.largest_eps,
        color="gray",
        lw=0.8,
        ls="--",
        label=rf"largest attack $\epsilon$ = {format_eps(panel.largest_eps)}",
    )
    ax.plot(
        np.maximum(x, low), y, ls="none", marker="o", ms=3, alpha=0.7, color=colour, label=f"flipped (n = {len(x)})"
    )
    kept = np.maximum(panel.certified[panel.never_flipped].to_numpy(), low)
    ax.plot(
        kept,
        np.full(len(kept), band),
        ls="none",
        marker="^",
        ms=4,
        alpha=0.7,
        color="gray",
        label=f"never flipped (n = {len(kept)}), top band",
    )
    if log:
        ax.set(xscale="log", yscale="log")
    ax.set(xlim=(low, high), ylim=(low, top))
    ax.text(
        0.97,
        0.03,
        f"below y = x: {below}",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        color="red" if below else "black",
    )


def radius_scatter_figure(triplets: pd.DataFrame) -> Figure | None:
    """Per triplet, the certified against the smallest flipping l2 radius, a panel per certified metric."""
    styles = metric_styles(metric_order(triplets))
    panels = [p for p in (radius_panel(triplets, m) for m in metric_order(triplets)) if p is not None]
    if not panels:
        return None
    with matplotlib.rc_context(STYLE):
        fig, axes = panel_grid(len(panels), 3.3)
        for ax, panel in zip(axes, panels):
            _scatter_panel(ax, panel, str(styles[panel.metric]["color"]))
            ax.set(
                title=panel.metric,
                xlabel=r"certified radius ($\ell_2$, images in [0, 1])",
                ylabel=r"empirical radius ($\ell_2$)",
            )
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False, columnspacing=1.0)
    return fig


# --- entry point ------------------------------------------------------------------------------


def plot_run(
    run_dir: Path,
    out_dir: Path | None = None,
    *,
    formats: tuple[str, ...] = ("png", "pdf"),
    split: str | None = None,
    examples: ExampleOptions | None = None,
    notes: list[str] | None = None,
) -> list[Path]:
    """Draw every figure whose data the run folder holds; returns the files written.

    Reads scores.csv, triplets.csv and histogram.csv; the examples figure also reads the adversarial examples
    in records/ and the clean images (bench/report/examples.py). ``split`` defaults to the headline split
    (see headline_split). Raises ValueError when the table's certified scores are off their curve. ``notes``
    receives one line when the run kept no adversarial examples (how to get them) or when examples.png cannot
    be drawn (why; the other figures are drawn all the same); without ``notes`` that second case raises.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "plots"
    scores, triplets, histogram = (
        read_optional(run_dir / name) for name in ("scores.csv", "triplets.csv", "histogram.csv")
    )
    if scores is None and triplets is None and histogram is None:
        raise FileNotFoundError(f"{run_dir}: no scores.csv, triplets.csv or histogram.csv; is this a run folder?")
    if split is None and scores is not None:
        split = headline_split(scores)
    if split is None and triplets is not None:
        split = str(triplets["split"].mode().iloc[0])
    if triplets is not None and split is not None:
        triplets = triplets_of_split(triplets, split)
    figures: dict[str, Figure | None] = {}
    if scores is not None and split is not None:
        figures["robustness_curves"] = robustness_figure(scores, split)
    if triplets is not None and split is not None:
        if scores is not None:
            check_certified_points(triplets, scores, split)
        figures["certified_curves"] = certified_figure(scores, triplets, split)
        figures["radius_scatter"] = radius_scatter_figure(triplets)
    if histogram is not None and not histogram.empty:
        figures["histograms"] = histogram_figure(*histogram_frames(histogram))
    figures["examples"] = run_examples_figure(run_dir, examples or ExampleOptions(), notes)
    paths: list[Path] = []
    for name, fig in figures.items():
        if fig is not None:
            paths += save_figure(fig, out_dir / name, formats)
    return paths
