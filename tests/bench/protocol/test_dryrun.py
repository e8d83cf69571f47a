"""The dry run speaks of the task's items: a retrieval run's attacks count queries, not triplets."""

from __future__ import annotations

from pathlib import Path

import pytest

from lipsim_bench.cli import main
from lipsim_bench.protocol import attack_work


def test_a_retrieval_dry_run_counts_queries(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIPSIM_BENCH_DEVICE_PROFILE", "none")
    argv = ["--dataset", "sample-retrieval", "--metrics", "lipsim-tiny", "--n", "4", "--eps", "0.5,1", "--dry-run"]
    assert main([*argv, "--evaluations", "recall-apgd", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "here: 4 queries" in out and "of correct" not in out  # the attacked shares were measured on 2AFC runs
    assert "attacks counted on every query (an upper bound): recall-apgd: the attacked shares" in out
    assert "triplet" not in out
    monkeypatch.setattr(attack_work, "ATTACK_WORK", tmp_path / "absent.json")
    assert main([*argv, "--evaluations", "recall-apgd", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "attacks counted on every query (an upper bound)" in out and "triplet" not in out
