"""A table never mixes settings silently: another n, seed or option in a cell is marked and explained,
the title says which n and seed it shows, two datasets get a table each, a score appears once per split."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from lipsim_bench.cli import main
from lipsim_bench.metrics import PerceptualMetric, register_metric, unregister_metric
from lipsim_bench.report.tables import render_tables

SAMPLE = ("--attacks", "apgd", "--eps", "0.5", "--steps", "2", "--no-certify", "--batch-size", "4")


@pytest.fixture(autouse=True)
def toy() -> Iterator[None]:
    """A second metric that needs no weights: "toy" (mean colour, 1 - cos)."""
    register_metric("toy")(type("Toy", (PerceptualMetric,), {"embed": lambda self, x: x.mean(dim=(2, 3)) + 0.1}))
    yield
    unregister_metric("toy")


def _run(capsys: pytest.CaptureFixture, out: Path, metrics: str, *extra: str) -> None:
    assert main(["--metrics", metrics, "--out", str(out), *SAMPLE, *extra]) == 0
    capsys.readouterr()


def _report(capsys: pytest.CaptureFixture, run: Path) -> tuple[str, str]:
    assert main(["report", str(run)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    return (run / "scores.md").read_text(), (run / "scores.tex").read_text()


def _row(markdown: str, metric: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| {metric} |"))


def test_a_cell_at_another_n_is_marked_in_its_cell(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(capsys, run, "pixel-l2", "--n", "8")
    _run(capsys, run, "toy", "--n", "4", "--attacks", "none")  # another metric's natural cell at n = 4
    markdown, tex = _report(capsys, run)
    assert markdown.startswith(
        "2AFC score (%) on sample / test, n = 8 triplets, seed 0, perturbed: ref; cells marked (a) differ"
    )
    assert "(" not in _row(markdown, "pixel-l2").split(" | ", 1)[1]
    assert _row(markdown, "toy").split(" | ")[1].endswith(" (a)")
    assert "- (a) computed with n = 4 triplets (the title's n = 8)" in markdown
    assert r"\textsuperscript{(a)}" in tex and "n = 4 triplets (the title's n = 8)" in tex
    # a rerun of a cell at another n keeps both: n = 4 is now most natural cells' n, so n = 8 gets its own
    # column (bench/report/variants.py), marked as well
    _run(capsys, run, "pixel-l2", "--n", "4", "--attacks", "none")
    markdown, _ = _report(capsys, run)
    assert markdown.startswith(
        "2AFC score (%) on sample / test, n = 4 triplets, seed 0, perturbed: ref; cells marked (a) differ"
    )
    assert "| metric | natural | natural(n=8) | apgd l2 0.5 |" in markdown
    natural, before, attack = _row(markdown, "pixel-l2").split(" | ")[1:4]
    assert "(" not in natural and before.endswith(" (a)") and attack.endswith(" (a) |")
    assert "- (a) computed with n = 8 triplets (the title's n = 4)" in markdown


def test_the_table_names_its_seed_and_marks_cells_of_another(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(capsys, run, "pixel-l2", "--n", "4", "--seed", "1")
    assert _report(capsys, run)[0].startswith(
        "2AFC score (%) on sample / test, n = 4 triplets, seed 1, perturbed: ref\n"
    )
    _run(capsys, run, "toy", "--n", "4", "--seed", "2", "--steps", "3")
    markdown, _ = _report(capsys, run)
    assert ", seed 1, perturbed: ref; cells marked (a), (b) differ" in markdown.splitlines()[0]
    assert "- (a) computed with seed 2 (the title's seed 1)" in markdown
    assert "- (b) computed with seed 2 (the title's seed 1); apgd steps = 3 (its other cells: 2)" in markdown
    assert re.fullmatch(
        r"\| toy \| [\d.]+ \[[\d.]+, [\d.]+\] \(a\) \| [\d.]+ \[[\d.]+, [\d.]+\] \(b\) \|", _row(markdown, "toy")
    )
    assert "(" not in _row(markdown, "pixel-l2")
    scores = pd.read_csv(run / "scores.csv")
    assert sorted(scores["seed"]) == [1, 1, 2, 2]


def test_a_folder_with_two_datasets_gets_one_table_per_dataset(capsys, tmp_path: Path, night_tree: Path) -> None:
    run = tmp_path / "run"
    _run(capsys, run, "pixel-l2", "--n", "4", "--attacks", "none")
    _run(capsys, run, "pixel-l2", "--dataset", f"night:{night_tree}", "--attacks", "none")
    markdown, tex = _report(capsys, run)
    titles = [line for line in markdown.splitlines() if line.startswith("2AFC score")]
    assert titles == [
        "2AFC score (%) on sample / test, n = 4 triplets, seed 0",
        "2AFC score (%) on night / test, n = 6 triplets, seed 0",
    ]
    assert markdown.count("the records hold 2 datasets: one table each") == 2
    assert tex.count(r"\begin{table}") == 2 and r"\label{tab:2afc-sample}" in tex and r"\label{tab:2afc-night}" in tex


def test_the_sample_set_lists_each_score_once(capsys, tmp_path: Path) -> None:
    """Its test triplets are all in one group: one row per split, so a groupby never counts a score twice."""
    run = tmp_path / "run"
    _run(capsys, run, "pixel-l2", "--n", "4")
    scores = pd.read_csv(run / "scores.csv")
    assert set(scores["split"]) == {"test"}
    assert not scores.duplicated(["metric", "evaluation", "norm", "eps"]).any()


def _scores(**changes: list) -> pd.DataFrame:
    base = {
        "metric": ["a", "a", "b", "b"],
        "dataset": "sample",
        "split": "test",
        "evaluation": ["natural", "apgd"] * 2,
        "norm": [None, "l2"] * 2,
        "eps": [float("nan"), 0.5] * 2,
        "score": [90.0, 80.0, 70.0, 60.0],
        "n": 10,
        "kind": ["clean", "attack"] * 2,
        "seed": 0,
        "settings": '{"options": {}}',
    }
    return pd.DataFrame({**base, **changes})


def test_uniform_settings_carry_no_marker() -> None:
    document = render_tables(_scores(), "sample", "test", [], "provenance: x")
    assert document.markdown.startswith("2AFC score (%) on sample / test, n = 10 triplets, seed 0, perturbed: ref\n")
    assert "(a)" not in document.markdown and "textsuperscript" not in document.latex


def test_every_differing_cell_is_marked_in_markdown_and_latex() -> None:
    document = render_tables(
        _scores(n=[10, 10, 10, 20], seed=[0, 0, 0, 3]), "sample", "test", ["a note"], "provenance: x"
    )
    assert "| b | 70.00 | 60.00 (a) |" in document.markdown
    assert "- (a) computed with n = 20 triplets (the title's n = 10); seed 3 (the title's seed 0)" in document.markdown
    assert r"60.00\textsuperscript{(a)}" in document.latex and "n = 20 triplets (the title's n = 10)" in document.latex
