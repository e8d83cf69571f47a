"""A retrieval run's table: the task's title, and a footer line for each column that measures something else."""

from __future__ import annotations

from pathlib import Path

import lipsim_bench


def test_columns_that_are_not_the_titles_quantity_say_what_they_measure(tmp_path: Path) -> None:
    result = lipsim_bench.evaluate(
        metric="pixel-l2",
        dataset="sample-retrieval",
        n=4,
        evaluations=["recall", "map", "stability-certified"],
        recall={"k": [1, 5]},
        out=tmp_path / "run",
    )
    text = (tmp_path / "run" / "scores.md").read_text(encoding="utf-8")
    assert text.startswith("Recall@1 (%) on sample-retrieval / test, n = 4 queries")
    assert "- map: mAP (mean average precision over the whole ranking), not Recall@1" in text
    assert "- recall(k=5): Recall@5, not Recall@1" in text
    assert "- stability-certified: the share of queries whose nearest gallery item is the clean query's own" in text
    assert "recall(k=1):" not in text  # the title's own quantity needs no line
    assert list(result.table.columns[:3]) == ["recall(k=1)", "recall(k=5)", "map"]


def test_the_api_without_evaluations_runs_the_tasks_clean_score() -> None:
    assert list(lipsim_bench.evaluate(metric="pixel-l2", dataset="sample-knn", n=3).table.columns) == ["knn"]
    assert list(lipsim_bench.evaluate(metric="pixel-l2", n=3).table.columns) == ["natural"]


def test_eps_sets_the_retrieval_certificates_radii_as_it_sets_2afcs(tmp_path: Path, capsys) -> None:
    from lipsim_bench.cli import main

    run = tmp_path / "run"
    argv = ["--dataset", "sample-retrieval", "--metrics", "pixel-l2", "--n", "3", "--eps", "0.5,1", "--out", str(run)]
    assert main(argv) == 0
    header = (run / "scores.md").read_text(encoding="utf-8").splitlines()[2]
    assert "recall-certified l2 0.5 | recall-certified l2 1 |" in header and "36/255" not in header
    assert main([*argv[:6], "--evaluations", "recall", "--certify-eps", "0.5", "--out", str(tmp_path / "b")]) == 2
    assert "no certificate with radii runs on sample-retrieval" in capsys.readouterr().err
