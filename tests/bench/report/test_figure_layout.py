"""Every figure survives 1 to 8 metrics: measured with the renderer's bounding boxes, nothing overlaps
(titles, legends, panels' labels), nothing is clipped by the figure's edge, no panel collapses; and a
metric looks the same in every figure, whatever the row order."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from lipsim_bench.metrics.registry import list_metrics
from lipsim_bench.report.histograms import clean_distances, histogram_figure, histogram_frames
from lipsim_bench.report.palette import KNOWN, metric_style
from lipsim_bench.report.plots import certified_figure, radius_scatter_figure, robustness_figure
from tests.bench.report.synthetic_run import synthetic_histogram, synthetic_scores, synthetic_triplets

#: The smallest panel (inches) a reader can still read data from.
MIN_PANEL_IN = (1.3, 1.0)
DPI = 40  # boxes scale with dpi; a small one keeps the test fast
SLACK_PX = 1.0


def _overlap(a: Bbox, b: Bbox) -> bool:
    return a.x0 < b.x1 - SLACK_PX and b.x0 < a.x1 - SLACK_PX and a.y0 < b.y1 - SLACK_PX and b.y0 < a.y1 - SLACK_PX


def layout_problems(fig: Figure) -> list[str]:
    """What a reader would see broken, one line each (empty: a clean layout)."""
    FigureCanvasAgg(fig)
    fig.set_dpi(DPI)
    fig.draw_without_rendering()  # constrained layout runs, no pixels
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    axes = [ax for ax in fig.axes if ax.get_visible()]
    problems: list[str] = []

    def clipped(box: Bbox, name: str) -> None:
        if (
            box.x0 < page.x0 - SLACK_PX
            or box.y0 < page.y0 - SLACK_PX
            or box.x1 > page.x1 + SLACK_PX
            or box.y1 > page.y1 + SLACK_PX
        ):
            problems.append(f"{name} is clipped by the figure's edge")

    frames = [ax.get_window_extent(renderer) for ax in axes]
    # each panel with its tick labels and axis labels, but without its title (checked on its own)
    bodies = [
        Bbox.union([frame, ax.xaxis.get_tightbbox(renderer), ax.yaxis.get_tightbbox(renderer)])
        for ax, frame in zip(axes, frames)
    ]
    for i, (ax, frame, body) in enumerate(zip(axes, frames, bodies)):
        w, h = frame.width / DPI, frame.height / DPI
        if w < MIN_PANEL_IN[0] or h < MIN_PANEL_IN[1]:
            problems.append(f"panel {i} ({ax.get_title()!r}) collapsed to {w:.2f} x {h:.2f} in")
        clipped(body, f"panel {i} ({ax.get_title()!r})")
        for j in range(i + 1, len(axes)):
            if _overlap(body, bodies[j]):
                problems.append(f"panel {i}'s labels overlap panel {j}'s")
    texts = [(f"title {ax.get_title()!r}", ax.title.get_window_extent(renderer)) for ax in axes if ax.get_title()]
    texts += [(f"legend {k}", legend.get_window_extent(renderer)) for k, legend in enumerate(fig.legends)]
    texts += [
        (f"legend of panel {i}", ax.get_legend().get_window_extent(renderer))
        for i, ax in enumerate(axes)
        if ax.get_legend()
    ]
    if fig._suptitle is not None and fig._suptitle.get_text():
        texts.append(("figure title", fig._suptitle.get_window_extent(renderer)))
    for name, box in texts:
        clipped(box, name)
        for i, body in enumerate(bodies):
            if _overlap(box, body):
                problems.append(f"{name} overlaps panel {i}")
    for a in range(len(texts)):
        for b in range(a + 1, len(texts)):
            if _overlap(texts[a][1], texts[b][1]):
                problems.append(f"{texts[a][0]} overlaps {texts[b][0]}")
    return problems


def figures(count: int, title: str | None = None) -> dict[str, Figure]:
    triplets = synthetic_triplets(count)
    scores = synthetic_scores(triplets, marked=triplets["metric"].iloc[0])
    frames, eps = histogram_frames(synthetic_histogram(count))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "robustness": robustness_figure(scores, "test", title=title),
            "certified": certified_figure(scores, triplets, "test", title=title),
            "radius scatter": radius_scatter_figure(triplets, scores, title=title),
            "histograms": histogram_figure(frames, eps, clean_distances(triplets), title=title),
        }


@pytest.mark.parametrize("count", range(1, 9))
def test_every_figure_keeps_its_layout_from_one_to_eight_metrics(count: int) -> None:
    title = "Figure 2 of a paper, with a headline of its own" if count % 2 else None  # plot --title: one more line
    found = {name: layout_problems(fig) for name, fig in figures(count, title).items()}
    assert {name: problems for name, problems in found.items() if problems} == {}


def test_the_checker_sees_a_collapsed_panel_a_clipped_title_and_an_overlapping_legend() -> None:
    """The checker is no test that cannot fail: planted breaks, each caught."""
    fig = Figure(figsize=(3.3, 1.2), layout="none")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], label="a line")
    ax.set_title("a title far too long to fit in one column of a paper, running off the edge")
    fig.legend(loc="center")
    problems = " | ".join(layout_problems(fig))
    assert "collapsed" in problems and "clipped" in problems and "legend 0 overlaps panel 0" in problems


def test_a_metric_looks_the_same_whatever_the_row_order() -> None:
    triplets = synthetic_triplets(3)
    scores = synthetic_scores(triplets)
    reversed_rows = scores.iloc[::-1].reset_index(drop=True)

    def colours(fig: Figure) -> dict[str, str]:
        return {
            text.get_text(): handle.get_color()
            for legend in fig.legends
            for text, handle in zip(legend.get_texts(), legend.legend_handles)
            if text.get_text() in set(triplets["metric"])
        }

    first, second = colours(robustness_figure(scores, "test")), colours(robustness_figure(reversed_rows, "test"))
    assert first == second and len(first) == 3
    assert first["pixel-l2"] == metric_style("pixel-l2")["color"]


def test_registered_metrics_have_fixed_distinct_looks_and_others_a_stable_hash() -> None:
    built_in = {m for m in list_metrics() if not m.startswith("test-")}  # other tests register toy metrics
    assert built_in <= set(KNOWN), "give a newly registered metric its entry in report/palette.py"
    assert len(set(KNOWN.values())) == len(KNOWN)
    other = metric_style("a-plugin-metric")
    assert other == metric_style("a-plugin-metric") and other["color"] not in {c for c, _ in KNOWN.values()}
    assert pd.Series([metric_style(f"m{i}")["color"] for i in range(40)]).nunique() > 4  # spread, not one colour
