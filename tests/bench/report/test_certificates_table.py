"""certificates.md and the certified figure when a run compares certificates (Lipschitz, smoothing at each sigma)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import lipsim_bench as bench
from lipsim_bench.report.certificates_table import certificates_table
from lipsim_bench.report.collect import read_records
from lipsim_bench.report.outputs import report_runs
from lipsim_bench.report.plots import certified_figure


def scores(rows: list[tuple[str, str, str, float | None, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "metric": m,
                "split": "test",
                "evaluation": e,
                "kind": k,
                "norm": None if eps is None else "l2",
                "eps": eps,
                "score": s,
                "n": 10,
            }
            for m, e, k, eps, s in rows
        ]
    )


def test_a_row_per_metric_and_certificate_a_column_per_radius() -> None:
    table = certificates_table(
        scores(
            [
                ("a", "natural", "clean", None, 90.0),
                ("a", "certified", "certificate", 0.5, 70.0),
                ("a", "smoothing(sigma=0.25)", "certificate", 0.0, 85.0),
                ("a", "smoothing(sigma=0.25)", "certificate", 0.5, 60.0),
                ("a", "apgd", "attack", 0.5, 50.0),
                ("b", "smoothing(sigma=0.25)", "certificate", 0.5, 40.0),
            ]
        ),
        "test",
    )
    assert list(table.index) == [("a", "certified"), ("a", "smoothing(sigma=0.25)"), ("b", "smoothing(sigma=0.25)")]
    assert list(table.columns) == ["natural", "0", "0.5"]
    assert table.loc[("a", "smoothing(sigma=0.25)")].tolist() == [90.0, 85.0, 60.0]
    assert pd.isna(table.loc[("a", "certified"), "0"]) and pd.isna(table.loc[("b", "smoothing(sigma=0.25)"), "natural"])


def test_rows_in_reading_order_whatever_the_record_order() -> None:
    table = certificates_table(
        scores(
            [
                ("a", "smoothing(sigma=0.5)", "certificate", 0.5, 10.0),
                ("a", "smoothing-embed(sigma=0.25)", "certificate", 0.5, 10.0),
                ("a", "smoothing(sigma=0.12)", "certificate", 0.5, 10.0),
                ("a", "certified", "certificate", 0.5, 10.0),
            ]
        ),
        "test",
    )
    assert [e for _, e in table.index] == [
        "certified",
        "smoothing(sigma=0.12)",
        "smoothing(sigma=0.5)",
        "smoothing-embed(sigma=0.25)",
    ]


def test_written_only_when_a_run_compares_certificates_and_drawn_a_panel_each(tmp_path: Path) -> None:
    common = dict(metric="pixel-l2", dataset="sample", n=4, out=tmp_path / "run")
    bench.evaluate(**common, evaluations=["natural", "certified"])
    assert not (tmp_path / "run" / "certificates.md").exists()
    bench.evaluate(
        **common,
        evaluations=["natural", "certified", "smoothing"],
        certified={"eps": (0.25, 0.5)},
        smoothing={"sigma": [0.12, 0.25], "n": 30, "n0": 5, "eps": (0.25, 0.5)},
    )
    text = (tmp_path / "run" / "certificates.md").read_text()
    # the folder keeps the first run's radii beside the second's: every cell it holds (one setting: eps is the column)
    assert "| metric | certificate | natural | 0 | 36/255 | 0.25 | 72/255 | 108/255 | 0.5 |" in text
    for name in ("certified", "smoothing(sigma=0.12)", "smoothing(sigma=0.25)"):
        assert f"| pixel-l2 | {name} |" in text
    folder = read_records([tmp_path / "run"])
    figure = certified_figure(folder.scores, folder.triplets, "test")
    assert figure is not None
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible() and ax.has_data()]
    assert titles == ["certified", "smoothing(sigma=0.12)", "smoothing(sigma=0.25)"]


@pytest.mark.parametrize("count", [1, 2])
def test_one_or_two_certificates_share_one_panel(tmp_path: Path, count: int) -> None:
    sigmas = [0.25] if count == 1 else [0.12, 0.25]
    result = bench.evaluate(
        metric="pixel-l2",
        n=3,
        evaluations=["natural", "smoothing"],
        out=tmp_path / "run",
        smoothing={"sigma": sigmas, "n": 20, "n0": 5, "eps": (0.25,)},
    )
    figure = certified_figure(result.scores, result.triplets, "test")
    assert figure is not None and len([ax for ax in figure.axes if ax.has_data()]) == 1


def test_rows_of_different_n_carry_a_warning(tmp_path: Path) -> None:
    bench.evaluate(metric="pixel-l2", n=4, evaluations=["natural", "certified"], out=tmp_path / "a")
    bench.evaluate(
        metric="pixel-l2",
        n=6,
        evaluations=["natural", "smoothing"],
        out=tmp_path / "b",
        smoothing={"n": 20, "n0": 5, "eps": (0.25,)},
    )
    report_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")
    text = (tmp_path / "merged" / "certificates.md").read_text()
    assert (
        "n = 4, 6 triplets" in text
        and "WARNING: these rows were computed on different numbers of triplets (4, 6)" in text
    )
