"""``run_bench.py compare``: a paper-preset run beside the published cells; random weights are never comparable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lipsim_bench.cli import main
from lipsim_bench.report.calibration import load_published
from lipsim_bench.report.calibration_compare import NOT_COMPARABLE
from lipsim_bench.run.plan import RANDOM_WEIGHTS_ENV
from tests.conftest import make_night_tree


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The paper preset, cut to 4 fake NIGHT triplets (fractional votes, both halves), 1 step, one radius:
    DreamSim's CLIP branch with random weights (the real architecture) and pixel-l2 (certified cells)."""
    root = tmp_path_factory.mktemp("compare")
    rows = [{"split": "test", "is_imagenet": i % 2 == 0, "p": p} for i, p in enumerate([1.0, 2 / 3, 0.5, 1 / 3])]
    night = make_night_tree(root / "nights", rows)
    out = root / "paper"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(RANDOM_WEIGHTS_ENV, "1")
        argv = ["--preset", "paper", "--dataset", f"night:{night}", "--metrics", "dreamsim-clip,pixel-l2"]
        argv += ["--n", "4", "--steps", "1", "--threat", "l2:0.5", "--no-download", "--out", str(out)]
        assert main(argv) == 0
    return out


def test_random_weights_mark_every_cell_not_comparable(paper_run: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["compare", str(paper_run)]) == 0
    out = capsys.readouterr().out
    assert "Every cell is not comparable: random weights" in out
    table = pd.read_csv(paper_run / "compare.csv")
    assert len(table) and set(table["verdict"]) == {NOT_COMPARABLE}
    natural = table[(table["evaluation"] == "natural") & (table["metric"] == "dreamsim-clip (random weights)")]
    assert sorted(natural["published"]) == [93.9, 93.91]  # DreamSim's README and the LipSim table
    attack = table[(table["evaluation"] == "apgd") & (table["eps"] == 0.5)].iloc[0]
    assert attack["published"] == 29.93 and "weights random vs official" in attack["differences"]
    assert "steps 1 vs not stated" in attack["differences"] and attack["steps"] == 1
    assert "| dreamsim-clip (random weights) | night/test | apgd l2 0.5 |" in out
    # pixel-l2's certified cells under both definitions: p = 0.5 dropped, so 3 of 4 triplets kept
    assert "| pixel-l2 | night/test | certified l2 36/255 |" in out and "| 3 (1) |" in out


def test_a_run_with_published_weights_gets_a_verdict_per_cell(
    paper_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """pixel-l2's records alone (no random metric): each cell inside or outside our interval, certified cells
    of the paper's definition compared by the paper's score."""
    run = tmp_path / "pixel"
    (run / "records").mkdir(parents=True)
    for path in (paper_run / "records").glob("pixel-l2__*"):
        shutil.copy(path, run / "records" / path.name)
    scores = pd.read_csv(paper_run / "scores.csv")
    ours = scores[(scores["metric"] == "pixel-l2") & (scores["split"] == "test")].set_index("evaluation")
    natural = float(ours.loc["natural", "score"])
    cell = {"source": "t", "metric": "pixel-l2", "dataset": "night", "split": "test", "n": None}
    data = {
        "format": 1,
        "sources": {"t": {"title": "T", "authors": "A", "year": 2020, "where": "Table 1", "url": "u"}},
        "cells": [
            {**cell, "evaluation": "natural", "norm": None, "eps": None, "score": natural, "protocol": {}},
            {**cell, "evaluation": "apgd", "norm": "l2", "eps": 0.5, "score": 0.0, "protocol": {"steps": 100}},
            {
                **cell,
                "evaluation": "certified",
                "norm": "l2",
                "eps": 36 / 255,
                "score": 10.0,
                "protocol": {"score_definition": "paper-certified"},
            },
        ],  # fmt: skip
    }
    (tmp_path / "pub.json").write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["compare", str(run), "--published", str(tmp_path / "pub.json"), "--out", str(tmp_path / "o")]) == 0
    assert "not comparable" not in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "o" / "compare.csv").set_index("evaluation")
    assert table.loc["natural", "inside"] == "yes" and table.loc["natural", "difference"] == 0
    assert "weights none vs not stated" in table.loc["natural", "differences"]  # the cell states no weights
    assert table.loc["apgd", "inside"] == "no" and "steps 1 vs 100" in table.loc["apgd", "differences"]
    certified = table.loc["certified"]
    assert certified["score_used"] == "paper-certified" and certified["ours"] == certified["paper_score"]
    assert certified["ours"] != certified["soft_score"] and certified["inside"] == "-"  # no interval for it
    assert "score soft-certified" not in certified["differences"]  # compared on the published definition


def test_no_matching_cell_is_one_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", "results/reference/sample-test", "--out", "/nonexistent/never-written"]) == 0
    out = capsys.readouterr().out.strip()
    assert "\n" not in out and out.startswith("no cell of results/reference/sample-test (sample)")


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    bad = json.loads(Path(load_published().path).read_text())
    bad["cells"][0]["norm"] = "l3"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert main(["compare", "results/reference/sample-test", "--published", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --published") and "cells/0/norm" in err and err.count("\n") == 1


def test_a_run_perturbing_x0_says_so_and_equal_weights_are_no_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The published attacks perturb the reference: a --perturb x0 cell matched to one names that difference,
    and a cell whose weights are the published ones ('none' beside 'none') lists none."""
    run = tmp_path / "x0"
    argv = ["--n", "4", "--metrics", "pixel-l2", "--evaluations", "natural,apgd", "--set", "apgd.steps=1"]
    assert main([*argv, "--eps", "0.5", "--perturb", "x0", "--out", str(run)]) == 0
    cell = {"source": "t", "metric": "pixel-l2", "dataset": "sample", "split": "test", "n": None, "score": 50.0}
    data = {
        "format": 1,
        "sources": {"t": {"title": "T", "authors": "A", "year": 2020, "where": "Table 1", "url": "u"}},
        "cells": [
            {**cell, "evaluation": "natural", "norm": None, "eps": None, "protocol": {"weights": "none"}},
            {**cell, "evaluation": "apgd", "norm": "l2", "eps": 0.5, "protocol": {"weights": "none", "steps": 1}},
        ],
    }
    (tmp_path / "pub.json").write_text(json.dumps(data))
    assert main(["compare", str(run), "--published", str(tmp_path / "pub.json"), "--out", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    table = pd.read_csv(tmp_path / "o" / "compare.csv").set_index("evaluation")
    assert "perturbed x0 vs ref" in table.loc["apgd", "differences"]
    assert "perturbed" not in table.loc["natural", "differences"]
    assert not table["differences"].str.contains("weights").any(), table["differences"].tolist()
