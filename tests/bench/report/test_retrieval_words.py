"""A retrieval run's footers speak of queries (H6's hostile pass): the --every and --seeds footers, the paired
comparison (it said "2AFC points" and "triplets"), and the dry run, which scaled an attack's work by the share
of 2AFC triplets the bundled 2AFC run attacked."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from lipsim_bench.cli import main

RUN = [
    "--dataset",
    "sample-retrieval",
    "--n",
    "6",
    "--every",
    "2",
    "--metrics",
    "pixel-l2,lipsim-tiny",
    "--evaluations",
    "recall,stability-apgd",
    "--eps",
    "2",
    "--set",
    "stability-apgd.steps=2",
    "--seeds",
    "0,1",
]


def quiet_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("retrieval") / "run"
    code, _, err = quiet_main(*RUN, "--out", str(folder))
    assert code == 0, err
    return folder


def test_subsample_and_seed_footers_name_queries(run: Path) -> None:
    table = (run / "scores.md").read_text()
    assert "queries: a subsample, every 2nd query of the split's first 6 (--every 2)" in table
    assert "their interval over queries of the seed-averaged agreement" in table
    assert "triplet" not in table


def test_paired_comparison_speaks_of_queries_and_recall(run: Path) -> None:
    code, out, err = quiet_main("report", str(run), "--compare", "pixel-l2,lipsim-tiny")
    assert code == 0, err
    written = (run / "compare_pixel-l2_lipsim-tiny.md").read_text()
    assert written.startswith("Paired difference pixel-l2 - lipsim-tiny (Recall@1 points) on the queries both")
    assert "per-query differences" in written
    assert "triplet" not in written and "2AFC" not in written


def test_dry_run_does_not_scale_retrieval_attacks_by_2afc_fractions() -> None:
    code, out, _ = quiet_main(*RUN[:8], "--dry-run")
    assert code == 0
    assert "of correct" not in out  # no share measured on 2AFC triplets applied to queries
    assert (
        "attacks counted on every query (an upper bound): recall-apgd: the attacked shares were measured on 2AFC" in out
    )
    assert "every 2nd query" in out and "triplet" not in out


def test_each_table_shows_its_own_datasets_notes(run: Path, tmp_path: Path) -> None:
    knn = tmp_path / "knn"
    argv = [
        "--dataset",
        "sample-knn",
        "--n",
        "4",
        "--metrics",
        "pixel-l2,lipsim-tiny",
        "--evaluations",
        "knn-certified",
    ]
    assert quiet_main(*argv, "--out", str(knn))[0] == 0
    both = ("report", str(run), str(knn), "--out", str(tmp_path / "both"), "--compare", "pixel-l2,lipsim-tiny")
    code, out, err = quiet_main(*both)
    assert code == 0, err
    assert "Paired difference pixel-l2 - lipsim-tiny (score points) on the items both" in out  # two tasks' cells
    retrieval, knn_table = (tmp_path / "both" / "scores.md").read_text().split("kNN accuracy (%) on sample-knn")
    assert "knn-certified:" in knn_table and "knn-certified" not in retrieval
    assert "Recall@5" in retrieval and "Recall@5" not in knn_table


def test_certificates_table_labels_its_clean_column_and_keeps_the_subsample_line(tmp_path: Path) -> None:
    argv = [*RUN[:6], "--metrics", "pixel-l2", "--evaluations", "map,recall,recall-certified,stability-certified"]
    assert quiet_main(*argv, "--out", str(tmp_path / "c"))[0] == 0
    table = (tmp_path / "c" / "certificates.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| metric"))
    assert header.startswith("| metric | certificate | map | 36/255")  # was "natural", holding the mAP
    assert "- queries: a subsample, every 2nd query of the split's first 6 (--every 2)" in table


def test_a_cell_of_another_n_is_marked_in_queries(tmp_path: Path) -> None:
    out = str(tmp_path / "mixed")
    for n, metric in (("4", "pixel-l2"), ("6", "lipsim-tiny")):
        argv = ["--dataset", "sample-retrieval", "--n", n, "--metrics", metric, "--evaluations", "recall"]
        assert quiet_main(*argv, "--out", out)[0] == 0
    table = (tmp_path / "mixed" / "scores.md").read_text()
    assert "- (a) computed with n = 4 queries (the title's n = 6)" in table and "triplet" not in table
