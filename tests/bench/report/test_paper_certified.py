"""The paper's certified accuracy is added beside the soft certified score only where votes are fractional."""

from __future__ import annotations

import pandas as pd

from lipsim_bench.report.paper_certified import paper_certified_rows


def _frames(p: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    # four triplets: the metric picks x1 (d1 < d0) everywhere; radii 1, 1, 0.1, 1 at eps 0.5
    triplets = pd.DataFrame(
        {
            "metric": "m",
            "dataset": "night",
            "split": "test",
            "evaluation": "certified",
            "kind": "certificate",
            "group": "test_imagenet",
            "eps": 0.5,
            "p": p,
            "correct": [q > 0.5 for q in p],
            "radius": [1.0, 1.0, 0.1, 1.0],
        }
    )
    soft = [(q if r > 0.5 else min(q, 1 - q)) for q, r in zip(p, triplets["radius"])]
    scores = pd.DataFrame(
        [
            {
                "metric": "m",
                "dataset": "night",
                "split": "test",
                "evaluation": "certified",
                "norm": "l2",
                "eps": 0.5,
                "score": 100 * sum(soft) / len(soft),
                "n": 4,
                "kind": "certificate",
                "ci_low": 1.0,
                "ci_high": 99.0,
                "ci_method": "bootstrap",
            }
        ]
    )
    return scores, triplets


def test_fractional_votes_add_the_paper_score_with_its_own_n() -> None:
    scores, triplets = _frames([0.8, 0.5, 1.0, 0.3])
    rows, notes = paper_certified_rows(scores, triplets)
    assert rows["evaluation"].tolist() == ["certified-paper"]
    # p = 0.5 dropped (3 kept); hits: 0.8 (correct, radius 1 > 0.5); 1.0 has radius 0.1; 0.3 is wrong
    assert rows["n"].tolist() == [3]
    assert abs(rows["score"].iloc[0] - 100 / 3) < 1e-9
    # exact Clopper-Pearson on 1 hit of 3 kept triplets (statsmodels: 0.84% to 90.57%)
    assert abs(rows["ci_low"].iloc[0] - 0.840) < 0.01 and abs(rows["ci_high"].iloc[0] - 90.57) < 0.01
    assert "p = 0.5 triplets dropped" in notes[0]


def test_two_halves_get_a_bootstrap_interval_around_the_weighted_score() -> None:
    scores, triplets = _frames([0.8, 0.5, 1.0, 0.3])
    triplets = pd.concat([triplets, triplets.assign(group="test_no_imagenet", p=[0.9, 0.8, 0.7, 0.6])])
    triplets = pd.concat([triplets] * 5, ignore_index=True)  # 20 triplets per half
    rows, _ = paper_certified_rows(scores, triplets)
    row = rows.iloc[0]
    assert row["ci_method"] == "bootstrap" and row["ci_low"] <= row["score"] <= row["ci_high"]
    assert row["ci_high"] - row["ci_low"] > 1


def test_hard_votes_add_nothing() -> None:
    scores, triplets = _frames([1.0, 0.0, 1.0, 1.0])
    rows, notes = paper_certified_rows(scores, triplets)
    assert rows.empty and notes == []
