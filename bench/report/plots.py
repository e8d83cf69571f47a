"""Publication figures from a run folder's CSVs (scores.csv, triplets.csv, histogram.csv).

Figures are rebuilt from the files a run writes, never from models, so anyone holding a run folder can
redraw them (examples.png also reads records/' adversarial examples and the dataset). Each figure is
skipped when its data is absent. Every figure's title names what was run (attack and steps, dataset, split,
n); a metric keeps one colour and marker everywhere (palette.py); scores' 95% intervals are shaded where
scores.csv has them; cells the table marks as computed unlike the rest are drawn dashed and hollow. The
certified curve is recomputed per triplet with the scoring's own functions and checked against the table:
a point off its curve would mean the figure and the table disagree, so ``plot_run`` refuses to draw it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lipsim_bench.report.certificates_table import certificate_order
from lipsim_bench.report.examples import ExampleOptions
from lipsim_bench.report.examples_figure import run_examples_figure
from lipsim_bench.report.figure_facts import (
    BAND_WORDS,
    MARKED_WORDS,
    Facts,
    attack_words,
    figure_title,
    is_marked,
    marked_labels,
    run_facts,
)
from lipsim_bench.report.figure_style import (
    LINE_STYLES,
    STYLE,
    band_handle,
    eps_axis_label,
    eps_tick_labels,
    marked_handle,
    metric_styles,
    norm_label,
    panel_grid,
    save_figure,
    scored_line,
    shared_legend,
)
from lipsim_bench.report.histograms import clean_distances, histogram_figure, histogram_frames
from lipsim_bench.report.plot_data import (
    certificate_curves,
    certified_curve,
    certified_rows,
    check_certified_points,
    kinds,
    metric_order,
    read_optional,
    run_task,
    select_rows,
    triplets_of_split,
)
from lipsim_bench.report.radius_scatter import (
    CASCADED,
    NO_MIN_NORM,
    cascade_of,
    empirical_radii,
    has_min_norm,
    radius_panel,
    radius_scatter_figure,
)
from lipsim_bench.report.tables import headline_split
from lipsim_bench.tasks.base import DEFAULT_TASK, TaskInfo

#: Re-exported for callers of the figures' old home.
__all__ = [
    "certified_curve",
    "certified_figure",
    "check_certified_points",
    "empirical_radii",
    "headline_split",
    "histogram_figure",
    "histogram_frames",
    "plot_run",
    "radius_panel",
    "radius_scatter_figure",
    "robustness_figure",
    "save_figure",
]


def _interval(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """ci_low, ci_high of score rows (NaN where scores.csv predates intervals)."""
    if "ci_low" not in rows.columns or "ci_high" not in rows.columns:
        return np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    return (pd.to_numeric(rows[c], errors="coerce").to_numpy(np.float64) for c in ("ci_low", "ci_high"))


def _extras(banded: bool, marked: bool, items: str = "triplets") -> list[tuple[object, str]]:
    band = BAND_WORDS.replace("triplets", items)
    return ([(band_handle(), band)] if banded else []) + ([(marked_handle(), MARKED_WORDS)] if marked else [])


# --- figures ----------------------------------------------------------------------------------


def robustness_figure(
    scores: pd.DataFrame, split: str, facts: Facts | None = None, title: str | None = None, task: TaskInfo | None = None
) -> Figure | None:
    """The task's score against attack eps, a panel per (attack, norm). 2AFC: natural score at eps = 0 and chance
    at 50%. Another task has neither: its clean cells need not be the attack's eps-0 score (a stability attack
    starts at 100%, a clean Recall@5 is no Recall@1), its chance depends on the gallery, and its axis reads
    "score": the panel names the evaluation (a stability attack's score is no Recall@1)."""
    task = task or TaskInfo.from_dict(None)
    two_afc = task.name == DEFAULT_TASK
    quantity = task.score if two_afc else "score"  # e.g. a stability attack's score is no Recall@1
    rows = scores[scores["split"] == split]
    attacks = rows[kinds(rows) == "attack"]
    if attacks.empty:
        return None
    facts = facts or run_facts(scores, None, split)
    marked = marked_labels(scores, split)
    panels = list(dict.fromkeys(zip(attacks["evaluation"], attacks["norm"])))
    styles = metric_styles(metric_order(scores))
    natural = rows[kinds(rows) == "clean"].drop_duplicates("metric").set_index("metric")
    if not two_afc:
        natural = natural.iloc[0:0]
    banded = any_marked = False
    with matplotlib.rc_context(STYLE):
        fig, axes = panel_grid(len(panels), 2.3)
        for ax, (attack, norm) in zip(axes, panels):
            part = attacks[(attacks["evaluation"] == attack) & (attacks["norm"] == norm)]
            for metric, line in part.groupby("metric", sort=False):
                line = line.sort_values("eps")
                if metric in natural.index:
                    line = pd.concat([natural.loc[[metric]].reset_index().assign(eps=0.0), line], ignore_index=True)
                flags = np.array(
                    [
                        is_marked(marked, str(metric), str(r.evaluation), r.norm, None if r.kind == "clean" else r.eps)
                        for r in line.assign(kind=kinds(line)).itertuples()
                    ],
                    dtype=bool,
                )
                low, high = _interval(line)
                x, y = line["eps"].to_numpy(np.float64), line["score"].to_numpy(np.float64)
                banded |= scored_line(ax, x, y, low, high, flags, styles[str(metric)], str(metric))
                any_marked |= bool(flags.any())
            ticks = ([0.0] if two_afc else []) + sorted(float(e) for e in part["eps"].unique())
            ax.set_xticks(ticks, eps_tick_labels(ticks, ax.get_position().width * fig.get_figwidth()))
            if two_afc:
                ax.axhline(50.0, color="gray", ls="--", lw=0.8, label="chance (50%)", zorder=1)
            ax.set(ylim=(0, 100), xlabel=eps_axis_label(str(norm)), ylabel=f"{quantity} (%)")
            ax.set_title(f"{attack_words(str(attack), scores)}, {norm_label(str(norm))}")
            ax.grid(alpha=0.3, lw=0.5)
        shared_legend(fig, axes, _extras(banded, any_marked, task.items))
        names = ", ".join(dict.fromkeys(attack_words(str(a), scores) for a, _ in panels))
        fig.suptitle(
            figure_title(f"{quantity if two_afc else 'Scores'} under attack: {names}", facts, fig.get_figwidth(), title)
        )
    return fig


def _attack_radii(scores: pd.DataFrame | None, split: str) -> list[float]:
    """The run's l2 attack radii (where the certified curve meets the robustness curves)."""
    if scores is None:
        return []
    l2 = scores[(scores["split"] == split) & (kinds(scores) == "attack") & (scores["norm"] == "l2")]
    return sorted({float(e) for e in l2["eps"]})


def certified_range(points: pd.DataFrame, scores: pd.DataFrame | None, split: str, radii: np.ndarray) -> float:
    """The radii that matter: up to the larger of the table's certified radii and the run's l2 attack radii
    (a little beyond); without either, where 95% of the triplets' radii lie."""
    tops = ([float(points["eps"].max())] if len(points) else []) + _attack_radii(scores, split)[-1:]
    if tops and max(tops) > 0:
        return 1.15 * max(tops)
    positive = radii[radii > 0]
    return float(np.quantile(positive, 0.95)) if positive.size else 1.0


def certified_figure(
    scores: pd.DataFrame | None,
    triplets: pd.DataFrame,
    split: str,
    facts: Facts | None = None,
    title: str | None = None,
) -> Figure | None:
    """Certified score against l2 radius, the exact step curve per metric and certificate, with the table's
    points (and their 95% intervals as bars). Up to two certificates share one panel (solid and dotted);
    more (smoothing at several sigmas beside the Lipschitz certificate) get a panel each, on one radius axis."""
    order = metric_order(triplets)
    curves = sorted(certificate_curves(triplets), key=lambda curve: order.index(curve[0]))
    if not curves:
        return None
    styles = metric_styles(metric_order(scores, triplets))
    evaluations = sorted(dict.fromkeys(e for _, e in curves), key=certificate_order)
    dashes = {e: LINE_STYLES[i % len(LINE_STYLES)] for i, e in enumerate(evaluations)}
    points = (
        scores[(scores["split"] == split) & (kinds(scores) == "certificate")].sort_values(
            ["metric", "evaluation", "eps"], kind="stable"
        )
        if scores is not None
        else pd.DataFrame(columns=["metric", "evaluation", "eps", "score"])
    )
    marked = marked_labels(scores, split)
    panels = [evaluations] if len(evaluations) <= 2 else [[e] for e in evaluations]
    radii = np.concatenate([certified_rows(triplets, m, e)["radius"].to_numpy(np.float64) for m, e in curves])
    top = certified_range(points, scores, split, radii)
    facts = facts or run_facts(scores, triplets, split)
    any_marked = banded = False
    with matplotlib.rc_context(STYLE):
        fig, axes = panel_grid(len(panels), 2.4)
        for ax, shown in zip(axes, panels):
            for metric, evaluation in [c for c in curves if c[1] in shown]:
                label = metric if len(evaluations) == 1 or len(shown) == 1 else f"{metric}, {evaluation}"
                mine = points[(points["metric"] == metric) & (points["evaluation"] == evaluation)]
                flags = np.array([is_marked(marked, metric, evaluation, "l2", e) for e in mine["eps"]], dtype=bool)
                dash = "--" if flags.any() else dashes[evaluation] if len(shown) > 1 else "-"
                banded |= _certified_curve(
                    ax, triplets, mine, metric, evaluation, top, styles[metric], dash, flags, label
                )
                any_marked |= bool(flags.any())
            certified_eps = sorted({float(e) for e in points[points["evaluation"].isin(shown)]["eps"] if e > 0})
            for eps in certified_eps:
                ax.axvline(eps, color="gray", lw=0.5, ls=":")
            ticks = sorted({0.0, *certified_eps, *(e for e in _attack_radii(scores, split) if e <= top)})
            if len(ticks) > 1:
                width_in = 0.9 * ax.get_position().width * fig.get_figwidth()  # before layout: allow for the labels
                ax.set_xticks(ticks, eps_tick_labels(ticks, width_in, span=top, first=tuple(certified_eps)))
            ax.set(xlim=(0, top), ylim=(0, 100), xlabel=eps_axis_label("l2"), ylabel="certified 2AFC score (%)")
            if len(panels) > 1:
                ax.set_title(shown[0])
            ax.grid(alpha=0.3, lw=0.5)
        extra = [(_point_handle(), "dots: the table's scores at its radii")] if len(points) else []
        shared_legend(fig, axes, extra + _extras(banded, any_marked))
        headline = f"Certified 2AFC score against the radius, certificate: {', '.join(evaluations)}"
        fig.suptitle(figure_title(headline, facts, fig.get_figwidth(), title))
    return fig


def _point_handle() -> object:
    from matplotlib.lines import Line2D

    return Line2D([], [], ls="none", marker="o", color="0.3")


def _certified_curve(
    ax: Axes,
    triplets: pd.DataFrame,
    mine: pd.DataFrame,
    metric: str,
    evaluation: str,
    top: float,
    style: dict[str, object],
    dash: str,
    flags: np.ndarray,
    label: str,
) -> bool:
    """One metric's certified step curve for one certificate, its table points (with interval bars, hollow where
    the table marks the cell) and its legend entry; returns whether an interval was drawn."""
    radii = certified_rows(triplets, metric, evaluation)["radius"].to_numpy()
    grid = np.unique(np.concatenate([np.linspace(0.0, top, 512), radii[radii <= top]]))
    colour = style["color"]
    ax.plot(grid, certified_curve(triplets, metric, grid, evaluation), drawstyle="steps-post", color=colour, ls=dash)
    x, y = mine["eps"].to_numpy(np.float64), mine["score"].to_numpy(np.float64)
    low, high = _interval(mine)
    known = np.isfinite(low) & np.isfinite(high)
    if known.any():
        bars = np.vstack([y[known] - low[known], high[known] - y[known]])
        ax.errorbar(x[known], y[known], yerr=np.clip(bars, 0, None), ls="none", color=colour, elinewidth=3, alpha=0.35)
    for group, face in ((~flags, colour), (flags, "white")):
        if group.any():
            ax.plot(x[group], y[group], ls="none", marker=style["marker"], color=colour, markerfacecolor=face, zorder=3)
    ax.plot([], [], color=colour, ls=dash, marker=style["marker"] if len(mine) else "", label=label)
    return bool(known.any())


# --- entry point ------------------------------------------------------------------------------


def plot_run(
    run_dir: Path,
    out_dir: Path | None = None,
    *,
    formats: tuple[str, ...] = ("png", "pdf"),
    split: str | None = None,
    examples: ExampleOptions | None = None,
    notes: list[str] | None = None,
    metrics: list[str] | None = None,
    evaluations: list[str] | None = None,
    title: str | None = None,
) -> list[Path]:
    """Draw every figure whose data the run folder holds; returns the files written.

    Reads scores.csv, triplets.csv and histogram.csv; the examples figure also reads the adversarial examples
    in records/ and the clean images (bench/report/examples.py). ``split`` defaults to the headline split
    (see headline_split). ``metrics`` and ``evaluations`` cut what is drawn (a name the folder lacks: BenchError);
    ``title`` goes above every figure's own title. Raises ValueError when the table's
    certified scores are off their curve. ``notes`` receives one line when a figure is not drawn for want of
    data the run could have had (no minimum-norm attack; no adversarial examples kept) or when examples.png
    cannot be drawn (why; the other figures are drawn all the same); without ``notes`` that last case raises.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "plots"
    frames = {name: read_optional(run_dir / f"{name}.csv") for name in ("scores", "triplets", "histogram")}
    if all(f is None for f in frames.values()):
        raise FileNotFoundError(f"{run_dir}: no scores.csv, triplets.csv or histogram.csv; is this a run folder?")
    if metrics or evaluations:
        frames = select_rows(frames, metrics, evaluations, str(run_dir))
    scores, triplets, histogram = frames["scores"], frames["triplets"], frames["histogram"]
    if split is None and scores is not None and not scores.empty:
        split = headline_split(scores)
    if split is None and triplets is not None and not triplets.empty:
        split = str(triplets["split"].mode().iloc[0])
    if triplets is not None and split is not None:
        triplets = triplets_of_split(triplets, split)
    facts = run_facts(scores, triplets, split)
    task = run_task(run_dir)
    figures: dict[str, Figure | None] = {}
    if task.name != DEFAULT_TASK:  # the other figures read 2AFC triplets (d0, d1, p) and 2AFC examples
        if scores is not None and split is not None:
            facts = Facts(facts.dataset, facts.split, facts.n, task.items)
            figures["robustness_curves"] = robustness_figure(scores, split, facts, title, task)
        (notes if notes is not None else []).append(
            f"a {task.name} run: plot draws its robustness curves only (the certified curves, radii, histograms and "
            f"examples are 2AFC figures); `report` draws the figures its evaluations declare into {run_dir}"
        )
        return [
            p for name, fig in figures.items() if fig is not None for p in save_figure(fig, out_dir / name, formats)
        ]
    if scores is not None and split is not None:
        figures["robustness_curves"] = robustness_figure(scores, split, facts, title)
    if triplets is not None and split is not None and not triplets.empty:
        if scores is not None:
            check_certified_points(triplets, scores, split)
        figures["certified_curves"] = certified_figure(scores, triplets, split, facts, title)
        figures["radius_scatter"] = radius_scatter_figure(triplets, scores, facts, title)
        if figures["radius_scatter"] is None and certificate_curves(triplets):
            after = cascade_of(scores)
            if not has_min_norm(triplets) or after is not None:
                why = NO_MIN_NORM if after is None else CASCADED.format(after=after)
                (notes if notes is not None else []).append(why)
    if histogram is not None and not histogram.empty:
        facts_here = Facts(facts.dataset, facts.split, int(histogram["id"].nunique()))
        frames_, eps = histogram_frames(histogram)
        figures["histograms"] = histogram_figure(frames_, eps, clean_distances(triplets), facts_here, title)
    figures["examples"] = run_examples_figure(run_dir, examples or ExampleOptions(), notes)
    if title and figures["examples"] is not None and figures["examples"]._suptitle is not None:
        figures["examples"].suptitle(f"{title}\n{figures['examples']._suptitle.get_text()}")
    paths: list[Path] = []
    for name, fig in figures.items():
        if fig is not None:
            paths += save_figure(fig, out_dir / name, formats)
    return paths
