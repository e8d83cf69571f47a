import pandas as pd
import pytest
import torch

from lipsim_bench.evaluations.twoafc import score_rows, size_weighted_mean, twoafc_agreement, twoafc_score


def test_agreement_formula_term_by_term() -> None:
    d0 = torch.tensor([0.1, 0.9, 0.5, 0.2])
    d1 = torch.tensor([0.9, 0.1, 0.5, 0.8])
    p = torch.tensor([0.25, 0.25, 0.7, 1.0])
    # picks x0 -> 1 - p; picks x1 -> p; tie -> 0.5; picks x0 but everyone chose x1 -> 0
    assert twoafc_agreement(d0, d1, p).tolist() == pytest.approx([0.75, 0.25, 0.5, 0.0])
    assert twoafc_score(d0, d1, p) == pytest.approx(100 * (0.75 + 0.25 + 0.5 + 0.0) / 4)


def test_size_weighted_mean() -> None:
    assert size_weighted_mean([90.0, 60.0], [3, 1]) == pytest.approx(82.5)
    with pytest.raises(ValueError):
        size_weighted_mean([1.0], [0])


def test_score_rows_weights_halves_by_size() -> None:
    frame = pd.DataFrame(
        {
            "evaluation": "natural",
            "norm": None,
            "eps": float("nan"),
            "group": ["test_imagenet"] * 3 + ["test_no_imagenet"],
            "agreement": [1.0, 1.0, 0.0, 1.0],
        }
    )
    rows = {r["split"]: r for r in score_rows(frame, split="test")}
    assert rows["test_imagenet"]["score"] == pytest.approx(200 / 3)
    assert rows["test_no_imagenet"]["score"] == pytest.approx(100.0)
    assert rows["test"]["score"] == pytest.approx(75.0) and rows["test"]["n"] == 4


def test_score_rows_single_group_gives_one_row() -> None:
    frame = pd.DataFrame(
        {"evaluation": "natural", "norm": None, "eps": float("nan"), "group": ["val"] * 2, "agreement": [1.0, 0.5]}
    )
    rows = score_rows(frame, split="val")
    assert len(rows) == 1 and rows[0]["score"] == pytest.approx(75.0)


def test_score_rows_one_group_under_another_name_gives_only_the_splits_row() -> None:
    """The sample set's test triplets are all test_no_imagenet: one row (test), never the same score twice."""
    frame = pd.DataFrame(
        {
            "evaluation": "natural",
            "norm": None,
            "eps": float("nan"),
            "group": ["test_no_imagenet"] * 3,
            "agreement": [1.0, 0.0, 0.5],
        }
    )
    rows = score_rows(frame, split="test")
    assert [(r["split"], r["n"]) for r in rows] == [("test", 3)] and rows[0]["score"] == pytest.approx(50.0)
