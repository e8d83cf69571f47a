"""bench.evaluate: the one-call Python API gives the CLI's numbers, in memory or into a run folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import lipsim_bench as bench
from lipsim_bench.cli import main
from lipsim_bench.errors import BenchError


def test_evaluate_in_memory_equals_the_cli(capsys, night_tree: Path, tmp_path: Path) -> None:
    result = bench.evaluate(metric=["pixel-l2", "lipsim-tiny"], dataset=f"night:{night_tree}", evaluations=["natural", "certified", "apgd"],
                            eps=[0.5, 1.0], apgd={"steps": 3}, certified={"eps": [0.5, 1.0]}, batch_size=4)
    assert result.out_dir is None and not (tmp_path / "results").exists()
    assert list(result.table.columns) == ["natural", "apgd l2 0.5", "apgd l2 1", "certified l2 0.5", "certified l2 1"]
    assert set(result.triplets["evaluation"]) == {"natural", "certified", "apgd"}
    out = tmp_path / "cli"
    argv = ["--metrics", "pixel-l2,lipsim-tiny", "--dataset", f"night:{night_tree}", "--evaluations", "natural,certified,apgd",
            "--eps", "0.5,1", "--set", "apgd.steps=3", "--batch-size", "4", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    cli = pd.read_csv(out / "scores.csv")
    cols = ["metric", "split", "evaluation", "eps", "score", "n"]
    pd.testing.assert_frame_equal(result.scores[cols].reset_index(drop=True), cli[cols], check_dtype=False)


def test_evaluate_into_a_run_folder_resumes(tmp_path: Path) -> None:
    kwargs = dict(metric="pixel-l2", dataset="sample", n=5, evaluations=["natural", "direct"], direct={"steps": 2}, out=tmp_path / "run")
    first = bench.evaluate(**kwargs)
    assert (tmp_path / "run" / "scores.csv").is_file() and (tmp_path / "run" / "histogram.csv").is_file()
    assert set(first.diagnostics) == {"histogram.csv"} and len(first.diagnostics["histogram.csv"]) == 5
    again = bench.evaluate(**kwargs)
    assert len(again.reused_times) == 2 and again.reuse_summary().startswith("reused 2 of 2")
    pd.testing.assert_frame_equal(first.scores, again.scores)


def test_evaluate_rejects_bad_options() -> None:
    with pytest.raises(BenchError, match="has no option 'stepz'"):
        bench.evaluate(metric="pixel-l2", n=2, evaluations=["natural", "apgd"], apgd={"stepz": 1})
    with pytest.raises(BenchError, match="not among this run's evaluations"):
        bench.evaluate(metric="pixel-l2", n=2, evaluations=["natural"], apgd={"steps": 1})
