"""What the figures say: titles naming attack (and steps), dataset and n; 95% bands where scores.csv has
intervals; marked cells drawn dashed and hollow; the radius scatter from the minimum-norm attack, with y = x;
certified curves on the run's radii; raw and scale-free histograms; plot's --metrics/--evaluations/--title."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from lipsim_bench.report.figure_facts import BAND_WORDS, MARKED_WORDS
from lipsim_bench.report.histograms import SCALE_FREE_TITLE, clean_distances, histogram_figure, percentiles
from lipsim_bench.report.palette import metric_style
from lipsim_bench.report.plots import certified_figure, plot_run, radius_scatter_figure, robustness_figure
from lipsim_bench.report.radius_scatter import CASCADED, NO_MIN_NORM
from tests.bench.report.synthetic_run import synthetic_histogram, synthetic_scores, synthetic_triplets

warnings.filterwarnings("ignore")


@pytest.fixture(scope="module")
def triplets() -> pd.DataFrame:
    return synthetic_triplets(2)


def legend_texts(fig: Figure) -> list[str]:
    return [t.get_text().replace("\n", " ") for legend in fig.legends for t in legend.get_texts()]  # unwrapped


def metric_lines(fig: Figure, metric: str) -> list:
    colour = metric_style(metric)["color"]
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_color() == colour and len(line.get_xdata())]


def test_titles_name_the_attack_and_its_steps_the_dataset_and_n(triplets: pd.DataFrame) -> None:
    scores = synthetic_scores(triplets)
    fig = robustness_figure(scores, "test")
    title = fig._suptitle.get_text()
    assert "apgd (20 steps)" in title and "fmn (20 steps)" in title and "sample / test, n = 12 triplets" in title
    assert [ax.get_title() for ax in fig.axes] == [r"apgd (20 steps), $\ell_2$", r"fmn (20 steps), $\ell_2$"]
    scatter = radius_scatter_figure(triplets, scores)._suptitle.get_text()
    assert "fmn (20 steps)" in scatter and "n = 12 triplets" in scatter
    assert "n = 12 triplets" in certified_figure(scores, triplets, "test")._suptitle.get_text()
    user = robustness_figure(scores, "test", title="Figure 3: our metric")._suptitle.get_text()
    assert user.startswith("Figure 3: our metric\n") and "apgd (20 steps)" in user and "n = 12 triplets" in user


def test_intervals_are_bands_where_scores_csv_has_them_and_plain_lines_where_not(triplets: pd.DataFrame) -> None:
    scores = synthetic_scores(triplets)
    banded = robustness_figure(scores, "test")
    assert sum(isinstance(c, PolyCollection) for ax in banded.axes for c in ax.collections) == 4  # 2 metrics x 2 panels
    assert BAND_WORDS in legend_texts(banded)
    old = robustness_figure(scores.drop(columns=["ci_low", "ci_high"]), "test")  # a run from before intervals
    assert not any(isinstance(c, PolyCollection) for ax in old.axes for c in ax.collections)
    assert BAND_WORDS not in legend_texts(old)


def test_cells_the_table_marks_are_drawn_dashed_and_hollow(triplets: pd.DataFrame) -> None:
    plain = robustness_figure(synthetic_scores(triplets), "test")
    assert not any(line.get_linestyle() == "--" for line in metric_lines(plain, "pixel-l2"))
    assert MARKED_WORDS not in legend_texts(plain)
    marked = robustness_figure(synthetic_scores(triplets, marked="pixel-l2"), "test")  # its apgd cells at n / 2
    apgd, fmn = marked.axes
    dashed = [line for line in apgd.get_lines() if line.get_linestyle() == "--" and line.get_color() == "#0072b2"]
    assert len(dashed) == 4  # natural -> 0.25 -> 0.5 -> 1 -> 2: every segment touches a marked cell
    assert any(line.get_markerfacecolor() == "white" for line in apgd.get_lines())
    assert not any(line.get_linestyle() == "--" and line.get_color() == "#0072b2" for line in fmn.get_lines())
    assert MARKED_WORDS in legend_texts(marked)
    assert not [t for t in legend_texts(marked) if "scores.csv" in t or "hollow markers" in t]  # no tool jargon


def test_the_scatter_reads_fmn_and_draws_y_equals_x(triplets: pd.DataFrame) -> None:
    fig = radius_scatter_figure(triplets)
    diagonal = [
        line
        for line in fig.axes[0].get_lines()
        if len(line.get_xdata()) == 2 and list(line.get_xdata()) == list(line.get_ydata())
    ]
    assert len(diagonal) == 1
    no_fmn = triplets[triplets["evaluation"] != "fmn"]
    assert radius_scatter_figure(no_fmn) is None  # APGD's eps grid is no minimal radius


def test_a_run_without_fmn_says_how_to_get_the_scatter(triplets: pd.DataFrame, tmp_path: Path) -> None:
    rows = triplets[triplets["evaluation"] != "fmn"]
    run = tmp_path / "run"
    run.mkdir()
    rows.to_csv(run / "triplets.csv", index=False)
    notes: list[str] = []
    paths = plot_run(run, formats=("png",), notes=notes)
    assert "radius_scatter.png" not in {p.name for p in paths} and NO_MIN_NORM in notes
    assert "--evaluations natural,certified,fmn" in NO_MIN_NORM


def test_a_cascaded_fmn_draws_no_scatter_and_says_why(triplets: pd.DataFrame) -> None:
    """FMN after APGD (the ensemble's cascade) holds APGD's flips at APGD's radii: no scatter may claim them."""
    import json

    scores = synthetic_scores(triplets)
    assert radius_scatter_figure(triplets, scores) is not None
    settings = [json.loads(text) for text in scores["settings"]]
    for row, evaluation in zip(settings, scores["evaluation"]):
        if evaluation == "fmn":
            row.setdefault("options", {})["after"] = "apgd"
    cascaded = scores.assign(settings=[json.dumps(row) for row in settings])
    assert radius_scatter_figure(triplets, cascaded) is None
    assert "after apgd" in CASCADED.format(after="apgd")


def test_certified_curves_span_the_radii_that_matter(triplets: pd.DataFrame) -> None:
    huge = triplets.copy()
    huge.loc[huge["evaluation"] == "certified", "radius"] *= 40  # a metric's radii far beyond every eps
    fig = certified_figure(synthetic_scores(huge), huge, "test")
    assert fig.axes[0].get_xlim()[1] == pytest.approx(1.15 * 2.0)  # the largest attack radius, a little beyond
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "2" in labels and not any("0.14" in label for label in labels)  # format_eps: 36/255, never 0.1411...


def test_radii_print_one_way_on_axes(triplets: pd.DataFrame) -> None:
    rows = triplets[triplets["eps"].isin([0.25, 0.5]) | triplets["eps"].isna()].copy()
    rows.loc[rows["eps"] == 0.25, "eps"] = 0.2
    labels = [t.get_text() for t in robustness_figure(synthetic_scores(rows), "test").axes[0].get_xticklabels()]
    assert "0.2" in labels and "51/255" not in labels


def test_histograms_raw_per_metric_and_scale_free_beside(triplets: pd.DataFrame) -> None:
    np.testing.assert_allclose(percentiles(np.array([1.0, 3.0, 0.5]), np.array([1.0, 2.0, 3.0, 4.0])), [25, 75, 0])
    histogram = synthetic_histogram(2)
    frames = {m: part for m, part in histogram.groupby("metric", sort=False)}
    fig = histogram_figure(frames, 0.5, clean_distances(triplets))
    raw = {ax.get_title(): ax.get_xlim()[1] for ax in fig.axes if ax.get_visible()}
    assert raw.pop(SCALE_FREE_TITLE) == 100
    assert raw["pixel-l2"] > 10 * raw["lipsim-tiny"]  # l2 and 1 - cos never share an axis
    assert len(histogram_figure(frames, 0.5).axes) == 2  # no clean distances (histogram.csv alone): raw panels only


def test_plot_draws_only_the_metrics_and_evaluations_named(
    triplets: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    triplets.to_csv(run / "triplets.csv", index=False)
    synthetic_scores(triplets).to_csv(run / "scores.csv", index=False)
    drawn: dict[str, Figure] = {}
    monkeypatch.setattr(
        "lipsim_bench.report.plots.save_figure", lambda fig, stem, formats: drawn.update({stem.name: fig}) or []
    )
    plot_run(run, metrics=["lipsim-tiny"], evaluations=["fmn"], title="T")
    robust = drawn["robustness_curves"]
    assert [ax.get_title() for ax in robust.axes] == [r"fmn (20 steps), $\ell_2$"]
    assert metric_lines(robust, "pixel-l2") == [] and metric_lines(robust, "lipsim-tiny")
    assert robust._suptitle.get_text().startswith("T\n")
    assert "certified_curves" not in drawn or drawn["certified_curves"] is None


@pytest.mark.parametrize(
    "args, words",
    [
        (["--metrics", "pixel-l2,nope"], "plot --metrics: "),
        (["--evaluations", "apgd,nope"], "has no 'nope'; it has natural, certified, apgd, fmn"),
        (["--metrics", ","], "plot --metrics names nothing"),
    ],
)
def test_plot_refuses_unknown_names_in_one_line(
    triplets: pd.DataFrame, tmp_path: Path, capsys, args: list[str], words: str
) -> None:
    from lipsim_bench.cli import main

    run = tmp_path / "run"
    run.mkdir()
    triplets.to_csv(run / "triplets.csv", index=False)
    assert main(["plot", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (run / "plots").exists()
