"""Figures from a run folder's CSVs alone: every figure in every format, skipped without its data,
and certified curves that pass through the table's certified scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lipsim_bench.evaluations.twoafc import score_rows
from lipsim_bench.report.plot_data import certified_mismatches
from lipsim_bench.report.plots import (
    certified_curve,
    check_certified_points,
    empirical_radii,
    headline_split,
    plot_run,
    radius_panel,
)

FIGURES = ("robustness_curves", "certified_curves", "radius_scatter", "histograms")
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}

# One certified metric ("lip") on six triplets over NIGHT's two halves; hand-checked natural agreement:
# id 0 picks x0 against p = 1 (0), 1 and 2 agree (1), 3 picks x1 with p = .75, 4 is a tie (.5), 5 agrees.
IDS = [0, 1, 2, 3, 4, 5]
GROUPS = ["test_imagenet"] * 3 + ["test_no_imagenet"] * 3
P = [1.0, 1.0, 0.0, 0.75, 0.0, 1.0]
D0 = [1.0, 2.0, 1.0, 2.0, 1.0, 3.0]
D1 = [2.0, 1.0, 2.0, 1.0, 1.0, 1.0]
NATURAL = np.array([0.0, 1.0, 1.0, 0.75, 0.5, 1.0])
RADIUS = np.array([0.3, 0.2, 0.5, 0.1, 0.0, 0.4])
WORST = np.minimum(P, 1 - np.array(P))
CERTIFIED_EPS = (0.1, 0.2)
# (evaluation, norm, eps, {id: (delta_norm, flipped)}) for "lip"; ids not listed: not flipped, delta 0
ATTACKS = [
    ("apgd", "l2", 0.25, {1: (0.24, True), 5: (0.05, False)}),
    ("apgd", "l2", 0.5, {1: (0.3, True), 2: (0.5, True), 5: (0.05, False)}),
    ("fmn", "l2", 0.5, {1: (0.21, True)}),
    ("fmn", "l2", 1.0, {1: (0.21, True), 2: (0.6, True)}),
    ("pgd", "linf", 4 / 255, {5: (0.01, True), 3: (0.001, True)}),
]


def base_rows(
    metric: str, evaluation: str, norm: str | None, eps: float, agreement: np.ndarray, **extra: object
) -> pd.DataFrame:
    """Per-triplet rows in triplets.csv's layout."""
    return pd.DataFrame(
        {
            "metric": metric,
            "dataset": "night",
            "split": "test",
            "group": GROUPS,
            "evaluation": evaluation,
            "norm": norm,
            "eps": eps,
            "id": IDS,
            "p": P,
            "d0": D0,
            "d1": D1,
            "agreement": agreement,
            "correct": agreement > 0.5,
            **extra,
        }
    )


def lip_triplets() -> pd.DataFrame:
    """Natural, certified (agreement by the README's rule, written out here) and attack rows of "lip"."""
    parts = [base_rows("lip", "natural", None, np.nan, NATURAL)]
    for eps in CERTIFIED_EPS:
        parts.append(
            base_rows(
                "lip", "certified", "l2", eps, np.where(RADIUS > eps, NATURAL, WORST), radius=RADIUS, ref_norm=2.0
            )
        )
    for evaluation, norm, eps, hits in ATTACKS:
        delta = [hits.get(i, (0.0, False))[0] for i in IDS]
        flipped = [hits.get(i, (0.0, False))[1] for i in IDS]
        agreement = np.where(flipped, 0.0, NATURAL)
        parts.append(base_rows("lip", evaluation, norm, eps, agreement, delta_norm=delta, flipped=flipped))
    return pd.concat(parts, ignore_index=True)


def plain_triplets() -> pd.DataFrame:
    """A metric without a certificate: natural and attack rows only."""
    natural = np.array([1.0, 1.0, 0.0, 0.25, 0.5, 1.0])
    parts = [base_rows("plain", "natural", None, np.nan, natural)]
    for evaluation, norm, eps, _ in ATTACKS:
        parts.append(base_rows("plain", evaluation, norm, eps, natural * 0.5, delta_norm=0.1, flipped=natural > 0.5))
    return pd.concat(parts, ignore_index=True)


def scores_from(triplets: pd.DataFrame) -> pd.DataFrame:
    """scores.csv rows computed by the benchmark's own scoring, halves first then the headline split."""
    rows = []
    for metric, part in triplets.groupby("metric", sort=False):
        rows += [{"metric": metric, "dataset": "night", **row} for row in score_rows(part, split="test")]
    return pd.DataFrame(rows)[["metric", "dataset", "split", "evaluation", "norm", "eps", "score", "n"]]


def histogram_rows() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.concat(
        [
            pd.DataFrame(
                {"id": IDS, "group": GROUPS, "eps": 1.0, "distance": rng.uniform(0, scale, len(IDS)), "metric": metric}
            )
            for metric, scale in (("plain", 1.0), ("lip", 0.1))
        ],
        ignore_index=True,
    )


def write_run(
    folder: Path,
    *,
    triplets: pd.DataFrame | None = None,
    scores: pd.DataFrame | None = None,
    histogram: pd.DataFrame | None = None,
) -> Path:
    """A run folder holding only the given CSVs (no records/)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("triplets", triplets), ("scores", scores), ("histogram", histogram)):
        if frame is not None:
            frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.fixture
def triplets() -> pd.DataFrame:
    return pd.concat([plain_triplets(), lip_triplets()], ignore_index=True)


def written(paths: list[Path]) -> set[str]:
    return {p.name for p in paths}


def test_certified_curve_matches_hand_computed_values(triplets: pd.DataFrame) -> None:
    # at 0.2 the triplet with radius exactly 0.2 is not certified (radius > eps, as the scoring counts)
    radii = np.array([0.0, 0.1, 0.2, 0.45, 1.0])
    expected = 100 * np.array([3.75, 3.25, 2.25, 1.25, 0.25]) / 6
    np.testing.assert_allclose(certified_curve(triplets, "lip", radii), expected, rtol=0, atol=1e-12)


def test_certified_curve_has_no_rows_for_an_uncertified_metric(triplets: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="plain"):
        certified_curve(triplets, "plain", np.array([0.1]))


def test_table_points_lie_on_the_curve_and_wrong_scores_are_caught(triplets: pd.DataFrame) -> None:
    scores = scores_from(triplets)
    assert certified_mismatches(triplets, scores, "test") == []
    check_certified_points(triplets, scores, "test")
    wrong = scores.copy()
    row = (wrong["evaluation"] == "certified") & (wrong["split"] == "test") & (wrong["eps"] == 0.2)
    wrong.loc[row, "score"] += 0.5
    assert len(certified_mismatches(triplets, wrong, "test")) == 1
    with pytest.raises(ValueError, match="lip certified at eps 0.2"):  # 0.2, never 51/255
        check_certified_points(triplets, wrong, "test")


def with_smoothed_certificate(triplets: pd.DataFrame) -> pd.DataFrame:
    """A second certificate of "lip" (a smoothed one: its own decision, d0/d1 and radii), rows of kind certificate."""
    d0, d1 = [2.0, 1.0, 1.0, 1.0, 2.0, 1.0], [1.0, 2.0, 2.0, 2.0, 1.0, 2.0]  # picks x1, x0, x0, x0, x1, x0
    agreement = np.array([1.0, 0.0, 1.0, 0.25, 0.0, 0.0])
    radius = RADIUS * 1.5
    parts = [
        base_rows(
            "lip", "smoothing", "l2", eps, np.where(radius > eps, agreement, WORST), radius=radius, smoothed=True
        ).assign(d0=d0, d1=d1, kind="certificate")
        for eps in (0.0, 0.5)
    ]
    kinds = {"natural": "clean", "certified": "certificate"}
    # smoothed rows first: the scatter must skip them, not merely come to the metric's own certificate first
    return pd.concat(
        parts + [triplets.assign(kind=triplets["evaluation"].map(kinds).fillna("attack"))], ignore_index=True
    )


def test_a_second_certificate_has_its_own_curve_and_stays_out_of_the_scatter(
    triplets: pd.DataFrame, tmp_path: Path
) -> None:
    both = with_smoothed_certificate(triplets)
    np.testing.assert_allclose(
        certified_curve(both, "lip", np.array([0.0, 0.1, 0.2, 0.45, 1.0]), "certified"),
        certified_curve(triplets, "lip", np.array([0.0, 0.1, 0.2, 0.45, 1.0])),
    )
    np.testing.assert_allclose(
        certified_curve(both, "lip", np.array([0.0, 0.5]), "smoothing"), 100 * np.array([2.25, 1.25]) / 6
    )
    with pytest.raises(ValueError, match="several certificates"):
        certified_curve(both, "lip", np.array([0.1]))
    scores = scores_from(both).assign(
        kind=lambda f: (
            f["evaluation"]
            .map({"natural": "clean", "certified": "certificate", "smoothing": "certificate"})
            .fillna("attack")
        )
    )
    assert certified_mismatches(both, scores, "test") == []
    panel = radius_panel(both, "lip")
    assert panel is not None and panel.certified.max() == pytest.approx(
        RADIUS.max()
    )  # the metric's own radii, not the smoothed ones
    run = write_run(tmp_path / "run", triplets=both, scores=scores)
    assert {"certified_curves.png", "radius_scatter.png"} <= written(plot_run(run, formats=("png",)))


def test_empirical_radii_are_the_minimum_norm_attacks_smallest_flip(triplets: pd.DataFrame) -> None:
    radii = empirical_radii(triplets, "lip")
    # id 1: fmn's 0.21 (apgd's 0.24 and 0.3 are an eps grid's, not minimal: ignored); id 2: fmn's 0.6 at eps 1,
    # not apgd's 0.5 (the figure says what FMN found); id 5 and id 3 flipped only in linf: absent
    assert radii.sort_index().to_dict() == {1: 0.21, 2: 0.6}
    assert radii.index.name == "id"


def test_empirical_radii_read_flags_as_written_to_csv(triplets: pd.DataFrame, tmp_path: Path) -> None:
    triplets.to_csv(tmp_path / "t.csv", index=False)
    assert empirical_radii(pd.read_csv(tmp_path / "t.csv"), "lip").sort_index().to_dict() == {1: 0.21, 2: 0.6}


def test_headline_split_is_the_largest_natural_split_and_the_last_on_a_tie(triplets: pd.DataFrame) -> None:
    scores = scores_from(triplets)
    assert headline_split(scores) == "test"
    halves = scores[scores["split"] != "test"]
    assert headline_split(halves) == "test_no_imagenet"  # same n: the later one


def test_plot_run_writes_every_figure_in_both_formats_from_csvs_alone(triplets: pd.DataFrame, tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", triplets=triplets, scores=scores_from(triplets), histogram=histogram_rows())
    paths = plot_run(run)
    assert written(paths) == {f"{name}.{fmt}" for name in FIGURES for fmt in ("png", "pdf")}
    assert not (run / "records").exists()
    for path in paths:
        assert path.parent == run / "plots"
        assert path.read_bytes().startswith(MAGIC[path.suffix[1:]])


def test_missing_optional_data_skips_figures(triplets: pd.DataFrame, tmp_path: Path) -> None:
    scores = scores_from(triplets)
    only_scores = write_run(tmp_path / "scores_only", scores=scores)
    assert written(plot_run(only_scores, tmp_path / "a", formats=("png",))) == {"robustness_curves.png"}
    plain = triplets[triplets["metric"] == "plain"].dropna(axis=1, how="all")
    no_certificate = write_run(tmp_path / "plain", triplets=plain, scores=scores[scores["metric"] == "plain"])
    assert written(plot_run(no_certificate, tmp_path / "b", formats=("pdf",))) == {"robustness_curves.pdf"}
    natural_only = triplets[triplets["evaluation"] == "natural"]
    bare = write_run(tmp_path / "natural", triplets=natural_only, scores=scores_from(natural_only))
    assert plot_run(bare, tmp_path / "c") == []


def test_scatter_needs_l2_attacks_and_the_histogram_needs_its_csv(triplets: pd.DataFrame, tmp_path: Path) -> None:
    linf_only = triplets[
        triplets["norm"].isna() | (triplets["norm"] == "linf") | (triplets["evaluation"] == "certified")
    ]
    run = write_run(tmp_path / "run", triplets=linf_only, scores=scores_from(linf_only))
    assert written(plot_run(run, formats=("png",))) == {"robustness_curves.png", "certified_curves.png"}


def test_plot_run_refuses_a_table_off_its_certified_curve(triplets: pd.DataFrame, tmp_path: Path) -> None:
    scores = scores_from(triplets)
    scores.loc[scores["evaluation"] == "certified", "score"] = 99.0
    with pytest.raises(ValueError, match="disagree"):
        plot_run(write_run(tmp_path / "run", triplets=triplets, scores=scores))


def test_plot_run_needs_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run folder"):
        plot_run(tmp_path)


def test_plot_histograms_keeps_the_runners_call(tmp_path: Path) -> None:
    from lipsim_bench.report.plots import histogram_figure, save_figure

    frames = {m: part for m, part in histogram_rows().groupby("metric", sort=False)}
    save_figure(histogram_figure(frames, 1.0), tmp_path / "histogram", ("png", "pdf"))
    assert (tmp_path / "histogram.png").read_bytes().startswith(MAGIC["png"])
    assert (tmp_path / "histogram.pdf").read_bytes().startswith(MAGIC["pdf"])


BOUND_LABEL = r"certified bound ($L\epsilon$)"


def bound_artists(fig) -> dict[str, list]:
    """Per panel title, the artists labelled as the certified bound."""
    return {
        ax.get_title(): [h for h, label in zip(*ax.get_legend_handles_labels()) if label == BOUND_LABEL]
        for ax in fig.axes
        if ax.get_visible() and ax.get_title()
    }


def test_the_histogram_draws_certified_bounds_beside_found_distances_and_old_folders_still_plot(tmp_path: Path) -> None:
    from matplotlib.lines import Line2D

    from lipsim_bench.report.plots import histogram_figure, histogram_frames

    rows = histogram_rows()
    cosine = rows[rows["metric"] == "lip"].assign(
        metric="lip-cosine", bound=np.linspace(0.2, 0.3, len(IDS))
    )  # per-triplet bounds
    with_bound = pd.concat(
        [rows.assign(bound=np.where(rows["metric"] == "lip", 0.5, np.nan)), cosine], ignore_index=True
    )
    drawn = bound_artists(histogram_figure(*histogram_frames(with_bound)))
    assert [type(a) for a in drawn["lip"]] == [Line2D] and list(drawn["lip"][0].get_xdata()) == [
        0.5,
        0.5,
    ]  # L eps: one line
    assert len(drawn["lip-cosine"]) == 1 and not isinstance(drawn["lip-cosine"][0], Line2D)  # a histogram of the bounds
    assert drawn["plain"] == []  # no bound: nothing drawn
    assert all(
        v == [] for v in bound_artists(histogram_figure(*histogram_frames(rows))).values()
    )  # a folder from before the column
    for name, frame in (("new", with_bound), ("old", rows)):
        run = write_run(tmp_path / name, histogram=frame)
        assert written(plot_run(run, formats=("png",))) == {"histograms.png"}


def _damage(frame: pd.DataFrame, column: str, value: object) -> pd.DataFrame:
    damaged = frame.copy()
    damaged[column] = damaged[column].astype(object)
    damaged.loc[damaged.index[0], column] = value
    return damaged


@pytest.mark.parametrize(
    "what, damage, words",
    [
        ("scores", lambda s, t: (s.iloc[:0], t), "scores.csv has a header but no rows"),
        ("scores", lambda s, t: (s.drop(columns=["evaluation"]), t), "scores.csv lacks the column(s) evaluation"),
        (
            "scores",
            lambda s, t: (_damage(s, "score", 150.0), t),
            "1 value(s) of score are not finite numbers in [0, 100] (e.g. 150.0)",
        ),
        ("scores", lambda s, t: (_damage(s, "score", "abc"), t), "of score are not finite numbers"),
        (
            "triplets",
            lambda s, t: (s, _damage(t, "p", float("nan"))),
            "1 value(s) of p are not finite numbers in [0, 1] (e.g. nan)",
        ),
        ("triplets", lambda s, t: (s, _damage(t, "d0", float("inf"))), "of d0 are not finite numbers"),
        ("triplets", lambda s, t: (s, _damage(t, "radius", -1.0)), "of radius are not finite numbers >= 0"),
        ("triplets", lambda s, t: (s, t.iloc[:0]), "triplets.csv has a header but no rows"),
    ],
)
def test_plot_refuses_csvs_it_would_draw_wrongly_in_one_line(
    triplets: pd.DataFrame, tmp_path: Path, capsys, what: str, damage, words: str
) -> None:
    """A NaN p, a score of 150, an empty table or a missing column: one line and exit 2, never a traceback,
    never a figure drawn from them (a NaN p used to draw a curve without a word)."""
    from lipsim_bench.cli import main

    scores, rows = damage(scores_from(triplets), triplets)
    run = write_run(tmp_path / "run", triplets=rows, scores=scores)
    assert main(["plot", str(run)]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (run / "plots").exists()


@pytest.mark.parametrize("out", ["file", "under-a-file"])
def test_plot_into_a_file_is_one_line_that_does_not_talk_of_units(
    triplets: pd.DataFrame, tmp_path: Path, capsys, out: str
) -> None:
    run = write_run(tmp_path / "run", triplets=triplets, scores=scores_from(triplets))
    (tmp_path / "file").write_text("x")
    from lipsim_bench.cli import main

    assert main(["plot", str(run), "--out", str(tmp_path / "file" / ("x" if out == "under-a-file" else ""))]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "units" not in err and "Traceback" not in err
