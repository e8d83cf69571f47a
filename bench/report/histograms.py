"""d(x, x + delta) under the direct attack (histograms.png, and histogram.png beside histogram.csv).

A raw panel per metric on its own axis (an l2 distance in pixels and a 1 - cos never share one), and,
where the run's triplets give the metric's clean distances, one scale-free panel for all metrics: each
found distance as a percentile of the same metric's clean distances d(ref, x0) and d(ref, x1) over the
run's triplets (the distances its 2AFC decisions compare). 50 means the perturbation moved the image as
far as a typical clean pair is apart; metrics become comparable without a common unit.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy.stats import percentileofscore

from lipsim_bench.formatting import format_eps
from lipsim_bench.report.figure_facts import Facts, figure_title
from lipsim_bench.report.figure_style import STYLE, metric_styles, panel_grid, shared_legend
from lipsim_bench.report.plot_data import histogram_bounds, kinds

BOUND_LABEL = r"certified bound ($L\epsilon$)"
FOUND_WORDS = r"found by the direct attack"
SCALE_FREE_TITLE = "all metrics, scale-free"


def clean_distances(triplets: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """Per metric, its clean distances d(ref, x0) and d(ref, x1) over the run's triplets (natural rows)."""
    if triplets is None or triplets.empty:
        return {}
    rows = triplets[kinds(triplets) == "clean"].drop_duplicates(["metric", "id"])
    return {
        str(m): np.concatenate([part["d0"].to_numpy(np.float64), part["d1"].to_numpy(np.float64)])
        for m, part in rows.groupby("metric", sort=False)
    }


def percentiles(found: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Each found distance as the percentage of clean distances at or below it (scipy's 'weak' percentile)."""
    return np.asarray(percentileofscore(clean, found, kind="weak"), dtype=np.float64)


def histogram_figure(
    frames: dict[str, pd.DataFrame],
    eps: float,
    clean: dict[str, np.ndarray] | None = None,
    facts: Facts | None = None,
    title: str | None = None,
) -> Figure:
    """A raw panel per metric (own x axis, certified bound beside where there is one: a line when it is the same
    for every triplet, as L eps is for l2 distances, else a histogram of per-triplet bounds), then the scale-free
    panel where ``clean`` has the metric's clean distances."""
    clean = {m: c for m, c in (clean or {}).items() if m in frames and len(c)}
    styles = metric_styles(list(frames))
    facts = facts or Facts(n=int(max(f["id"].nunique() for f in frames.values())) if frames else None)
    with matplotlib.rc_context(STYLE):
        fig, axes = panel_grid(len(frames) + (1 if clean else 0), 1.9)
        for ax, (metric, frame) in zip(axes, frames.items()):
            _raw_panel(ax, metric, frame, str(styles[metric]["color"]))
        if clean:
            _scale_free_panel(axes[-1], frames, clean, styles)
        extra = [(Patch(facecolor="0.6", alpha=0.85), FOUND_WORDS)]
        shared_legend(fig, axes, extra)
        headline = rf"Distance moved by the direct attack, $\ell_2$ $\epsilon$ = {format_eps(eps)} (images in [0, 1])"
        fig.suptitle(figure_title(headline, facts, fig.get_figwidth(), title))
    return fig


def _raw_panel(ax: Axes, metric: str, frame: pd.DataFrame, colour: str) -> None:
    bound = histogram_bounds(frame)
    top = max(float(frame["distance"].max()), float(bound.max()) if len(bound) else 0.0) or 1.0
    ax.hist(frame["distance"], bins=30, range=(0.0, top), color=colour, alpha=0.85)
    ax.axvline(float(frame["distance"].median()), color="black", lw=1, ls="--", label="median found")
    _draw_bound(ax, bound, top)
    ax.set(title=metric, xlabel=r"$d(x, x+\delta)$ (its own scale)", ylabel="images", xlim=(0, top * 1.02))


def _scale_free_panel(
    ax: Axes, frames: dict[str, pd.DataFrame], clean: dict[str, np.ndarray], styles: dict[str, dict[str, object]]
) -> None:
    """Share of images (%) whose found distance is at most the p-th percentile of the metric's clean distances;
    the metric's marker at its median (metrics of one family share a colour, never a marker)."""
    for metric, reference in clean.items():
        found = np.sort(percentiles(frames[metric]["distance"].to_numpy(np.float64), reference))
        share = 100.0 * np.arange(1, len(found) + 1) / len(found)
        colour, marker = styles[metric]["color"], styles[metric]["marker"]
        ax.step(
            np.concatenate([[0.0], found, [100.0]]), np.concatenate([[0.0], share, [100.0]]), where="post", color=colour
        )
        ax.plot([float(np.median(found))], [50.0], marker=marker, color=colour, ls="-", label=metric)  # its median
    ax.set(
        title=SCALE_FREE_TITLE,
        xlabel="percentile of its clean\nd(ref, x0), d(ref, x1)",
        ylabel="images at or below (%)",
        xlim=(0, 100),
        ylim=(0, 100),
    )
    ax.grid(alpha=0.3, lw=0.5)


def _draw_bound(ax: Axes, bound: pd.Series, top: float) -> None:
    """The certified bound of one panel (nothing without one)."""
    if bound.empty:
        return
    if np.allclose(bound.to_numpy(), bound.iloc[0], rtol=1e-9, atol=0.0):
        ax.axvline(float(bound.iloc[0]), color="tab:red", lw=1.4, label=BOUND_LABEL)
    else:
        ax.hist(bound, bins=30, range=(0.0, top), histtype="step", color="tab:red", lw=1.2, label=BOUND_LABEL)


def histogram_frames(histogram: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], float]:
    """histogram.csv (id, group, eps, distance, metric) as the per-metric frames histogram_figure takes."""
    frames = {str(m): part for m, part in histogram.groupby("metric", sort=False)}
    return frames, float(histogram["eps"].max())


def draw(run_dir: Path, rows: pd.DataFrame) -> list[str]:
    """histogram.png/.pdf beside histogram.csv: the figure the direct attack declares (``Evaluation.figures``); the
    scale-free panel reads the clean distances of the folder's triplets.csv (written before the figures)."""
    if rows.empty:
        return []
    from lipsim_bench.report.figure_style import save_figure

    triplets_csv = run_dir / "triplets.csv"
    triplets = pd.read_csv(triplets_csv) if triplets_csv.is_file() else None
    figure = histogram_figure(*histogram_frames(rows), clean=clean_distances(triplets))
    save_figure(figure, run_dir / HISTOGRAM_STEM, ("png", "pdf"))
    return [f"{HISTOGRAM_STEM}.png", f"{HISTOGRAM_STEM}.pdf"]


HISTOGRAM_STEM = "histogram"
