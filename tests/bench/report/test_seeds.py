"""A cell run under the seeds of a ``--seeds`` run is one cell: the mean over seeds, with spread and worst case;
records of separate ``--seed`` runs, or of other settings, stay apart as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lipsim_bench.report.collect import Entry, collect
from lipsim_bench.report.seeds import seeds_table, write_seeds


def _entry(
    seed: int, agreement: list[float], *, seeds: list[int] | None, steps: int = 2, time_ns: int | None = None
) -> Entry:
    """One apgd record at l2 0.5 on triplets a, b, c, ... with these per-triplet agreements."""
    n = len(agreement)
    rows = pd.DataFrame(
        {
            "evaluation": "apgd",
            "norm": "l2",
            "eps": 0.5,
            "group": "test",
            "id": [f"t{i}" for i in range(n)],
            "p": 0.0,
            "agreement": agreement,
        }
    )
    settings = {"seed": seed, "data": "sha256:x", "options": {"seed": seed, "steps": steps}, "builds_on": f"k{seed}"}
    record = {
        "unit": {
            "metric": "m",
            "dataset": "sample",
            "split": "test",
            "n": n,
            "evaluation": "apgd",
            "settings": settings,
        },
        "evaluation": {"name": "apgd", "kind": "attack"},
        "applies": True,
        "notes": [],
        "scores": [
            {"split": "test", "evaluation": "apgd", "norm": "l2", "eps": 0.5, "score": 100 * np.mean(agreement), "n": n}
        ],
        "config": {"seeds": seeds, "every": 1},
        "provenance": {"time": "2026-01-01T00:00:00+00:00", "time_ns": time_ns if time_ns is not None else seed},
    }
    return Entry(record, rows=rows)


def _natural(seed: int = 0) -> Entry:
    rows = pd.DataFrame({"evaluation": "natural", "group": "test", "id": ["t0", "t1", "t2", "t3"], "agreement": 1.0})
    return Entry(
        {
            "unit": {
                "metric": "m",
                "dataset": "sample",
                "split": "test",
                "n": 4,
                "evaluation": "natural",
                "settings": {"seed": seed, "options": {}},
            },  # fmt: skip
            "evaluation": {"name": "natural", "kind": "clean"},
            "applies": True,
            "notes": [],
            "scores": [{"split": "test", "evaluation": "natural", "norm": None, "eps": None, "score": 100.0, "n": 4}],
            "config": {"seeds": [0, 1, 2]},
            "provenance": {"time": "2026-01-01T00:00:00+00:00", "time_ns": 0},
        },
        rows=rows,
    )


SEED_ROWS = {0: [1, 1, 0, 0], 1: [1, 0, 0, 0], 2: [1, 1, 1, 0]}  # 50, 25, 75


def test_the_seeds_of_a_seeds_run_fold_into_one_cell(tmp_path: Path) -> None:
    entries = [_natural()] + [_entry(s, a, seeds=[0, 1, 2]) for s, a in SEED_ROWS.items()]
    collected = collect(entries)
    scores = collected.scores
    assert scores["evaluation"].tolist() == ["natural", "apgd"]  # one column, not apgd(seed=1), apgd(seed=2)
    apgd = scores.iloc[1]
    assert apgd["score"] == pytest.approx(50.0)
    assert apgd["seed_worst"] == pytest.approx(25.0)
    assert apgd["seed_sd"] == pytest.approx(25.0)  # sample sd of 50, 25, 75
    assert (apgd["seeds"], apgd["seed_scores"], apgd["seed"]) == ("0,1,2", "50,25,75", 0)
    assert apgd["ci_low"] < 50.0 < apgd["ci_high"]  # over triplets of the seed-averaged agreement
    triplets = collected.triplets[collected.triplets["evaluation"] == "apgd"]
    assert triplets["agreement"].tolist() == pytest.approx([1, 2 / 3, 1 / 3, 0])
    assert any("mean over seeds 0, 1, 2" in line for line in collected.notes)
    assert write_seeds(tmp_path, scores) == ["seeds.csv", "seeds.md"]
    table = pd.read_csv(tmp_path / "seeds.csv")
    assert table[["seed 0", "seed 1", "seed 2", "min", "max", "worst"]].iloc[0].tolist() == [50, 25, 75, 25, 75, 25]
    assert (
        "| m | test | apgd l2 0.5 | 4 | 50.00 | 25.00 | 25.00 - 75.00 | 25.00 |" in (tmp_path / "seeds.md").read_text()
    )


def test_a_seed_reused_from_a_plain_run_joins_the_seeds_run_that_names_it() -> None:
    entries = [_entry(0, SEED_ROWS[0], seeds=None), _entry(1, SEED_ROWS[1], seeds=[0, 1])]
    scores = collect(entries).scores
    assert scores["evaluation"].tolist() == ["apgd"]
    assert scores["score"].iloc[0] == pytest.approx(37.5)


def test_separate_seed_runs_and_other_settings_stay_apart() -> None:
    apart = collect([_entry(0, SEED_ROWS[0], seeds=None), _entry(1, SEED_ROWS[1], seeds=None)]).scores
    assert apart["evaluation"].tolist() == ["apgd", "apgd(seed=1)"]  # as before --seeds existed
    assert "seeds" not in apart.columns  # nothing folded: scores.csv keeps its columns
    steps = collect([_entry(0, SEED_ROWS[0], seeds=[0, 1]), _entry(1, SEED_ROWS[1], seeds=[0, 1], steps=5)]).scores
    assert steps["score"].tolist() == [50.0, 25.0]  # another option: its own column, never averaged in


def test_a_recomputed_seed_counts_once() -> None:
    entries = [_entry(s, a, seeds=[0, 1]) for s, a in list(SEED_ROWS.items())[:2]]
    entries.append(_entry(1, [1, 1, 1, 1], seeds=[0, 1], time_ns=9))  # seed 1 again, newer
    scores = collect(entries).scores
    assert scores["score"].tolist() == [pytest.approx(75.0)]  # mean of 50 and the newer 100
    assert scores["seed_scores"].tolist() == ["50,100"]


def test_no_several_seeds_no_seed_files(tmp_path: Path) -> None:
    (tmp_path / "records").mkdir()
    (tmp_path / "seeds.md").write_text("old")
    assert write_seeds(tmp_path, collect([_natural()]).scores) == []
    assert not (tmp_path / "seeds.md").exists()  # an old spread never outlives its cells


def test_seeds_md_orders_radii_as_the_table_does() -> None:
    """Radii ascending within a cell's evaluation (36/255 < 0.25 < 72/255), as scores.md's columns."""
    eps = [0.0, 36 / 255, 72 / 255, 108 / 255, 0.25, 0.5]
    scores = pd.DataFrame(
        {
            "metric": "m", "dataset": "sample", "split": "test", "evaluation": "smoothing(sigma=0.5)", "norm": "l2",
            "eps": eps, "n": 8, "score": 50.0, "seeds": "0,1", "seed_scores": "50,50", "seed_sd": 0.0,
            "seed_worst": 50.0,
        }
    )  # fmt: skip
    assert seeds_table(scores)["eps"].tolist() == sorted(eps)
