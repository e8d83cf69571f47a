"""``report --compare A,B``: paired differences on common triplets, their interval and an exact paired test."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lipsim_bench.cli import main
from lipsim_bench.errors import BenchError
from lipsim_bench.report.collect import SCORE_COLUMNS, Collected
from lipsim_bench.report.paired import MCNEMAR, SIGN, _test, compare_metrics

REFERENCE = Path(__file__).resolve().parents[3] / "results" / "reference" / "sample-test"


def test_exact_mcnemar_on_a_hand_case() -> None:
    """1 triplet only A gets right, 7 only B: p = 2 P(X <= 1 | 8, 1/2) = 2 * 9 / 256."""
    a = np.r_[np.ones(5), [1.0], np.zeros(7), np.zeros(3)]
    b = np.r_[np.ones(5), [0.0], np.ones(7), np.zeros(3)]
    assert _test(a, b) == (MCNEMAR, pytest.approx(18 / 256))
    assert _test(a, a) == (MCNEMAR, 1.0)


def test_fractional_agreements_get_the_exact_sign_test() -> None:
    a = np.array([1.0, 2 / 3, 2 / 3, 1.0, 1 / 3, 1.0, 0.5])
    b = np.array([2 / 3, 1 / 3, 0.0, 1 / 3, 0.0, 0.0, 0.5])  # 6 differences above 0, none below, one tie
    assert _test(a, b) == (SIGN, pytest.approx(2 / 64))
    assert _test(a, a) == (SIGN, 1.0)  # every triplet ties: no evidence, and no statsmodels error


def _collected(b_shift: int = 0, b_dataset: str = "d") -> Collected:
    """Metrics a and b on one cell: 20 triplets in two groups; b's rows shuffled (matching is by group and id)."""
    rng = np.random.default_rng(0)
    agree_a = (rng.random(20) < 0.9).astype(float)
    agree_b = (rng.random(20) < 0.5).astype(float)
    ids = np.arange(20)
    rows, scores = [], []
    for metric, agree, dataset in (("a", agree_a, "d"), ("b", agree_b, b_dataset)):
        own = ids + (b_shift if metric == "b" else 0)
        frame = pd.DataFrame({"id": own, "group": np.where(own % 20 < 10, "g1", "g2"), "agreement": agree})
        frame = frame.assign(metric=metric, dataset=dataset, split="test", evaluation="natural", norm=None, eps=np.nan)
        rows.append(frame.sample(frac=1.0, random_state=1) if metric == "b" else frame)
        scores.append(
            {"metric": metric, "dataset": dataset, "split": "test", "evaluation": "natural", "norm": None}
            | {"eps": np.nan, "score": 100 * agree.mean(), "n": 20, "ci_low": 0.0, "ci_high": 100.0}
            | {"ci_method": "bootstrap", "kind": "clean", "seed": 0, "settings": "{}"}
        )
    return Collected(scores=pd.DataFrame(scores)[SCORE_COLUMNS], triplets=pd.concat(rows, ignore_index=True))


def test_the_paired_difference_is_on_matched_triplets_with_its_interval() -> None:
    collected = _collected()
    (row,) = compare_metrics(collected, "a", "b").frame.to_dict("records")
    t = collected.triplets
    a = t[t.metric == "a"].sort_values("id")["agreement"].to_numpy()
    b = t[t.metric == "b"].sort_values("id")["agreement"].to_numpy()
    assert row["n"] == 20 and row["diff"] == pytest.approx(100 * (a - b).mean())
    assert row["ci_low"] < row["diff"] < row["ci_high"] and row["test"] == MCNEMAR
    assert row["score_a"] - row["score_b"] == pytest.approx(row["diff"])
    again = compare_metrics(collected, "a", "b").frame
    assert (again["ci_low"].iloc[0], again["ci_high"].iloc[0]) == (row["ci_low"], row["ci_high"])  # seeded
    half = compare_metrics(_collected(b_shift=10), "a", "b").frame  # b scored on ids 10..29: 10 in common
    assert half["n"].iloc[0] == 10


def test_bad_names_and_no_common_cell_are_one_line() -> None:
    with pytest.raises(BenchError, match="names one metric twice"):
        compare_metrics(_collected(), "a", "a")
    with pytest.raises(BenchError, match="no metric 'c' in these records; they hold: a, b"):
        compare_metrics(_collected(), "a", "c")
    with pytest.raises(BenchError, match="share no cell"):
        compare_metrics(_collected(b_dataset="other"), "a", "b")
    with pytest.raises(BenchError, match="share no cell"):
        compare_metrics(_collected(b_shift=100), "a", "b")  # same cell, no common triplet


def test_report_compare_prints_and_writes_the_table(capsys, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    argv = ["report", str(REFERENCE), "--out", str(out), "--metrics", "lipsim-tiny,convsim-tiny"]
    code = main(argv + ["--evaluations", "natural,apgd", "--compare", "lipsim-tiny,convsim-tiny"])
    printed, err = capsys.readouterr()
    assert code == 0, err
    assert "Paired difference lipsim-tiny - convsim-tiny" in printed
    assert "| apgd l2 1 | 100 | 81.00 | 31.00 | +50.00 [" in printed
    frame = pd.read_csv(out / "compare_lipsim-tiny_convsim-tiny.csv")
    assert len(frame) == 5 and (frame["test"] == MCNEMAR).all() and (frame["n"] == 100).all()
    assert (out / "compare_lipsim-tiny_convsim-tiny.md").read_text().startswith("Paired difference")
    assert main(argv + ["--compare", "lipsim-tiny,lipsim-tiny"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_cells_computed_with_other_options_are_named() -> None:
    """Merged runs can pair a 5-step attack with a 2-step one: the paired table must say so, never silently."""
    import json

    from lipsim_bench.report.paired import _setting_differences

    def settings(steps: int) -> str:
        return json.dumps({"options": {"attack": "apgd", "steps": steps}})

    cell = {"dataset": "sample", "split": "test", "evaluation": "apgd", "norm": "l2", "eps": 0.5}
    scores = pd.DataFrame(
        [{**cell, "metric": "a", "settings": settings(5)}, {**cell, "metric": "b", "settings": settings(2)}]
    )
    frame = pd.DataFrame([cell])
    assert _setting_differences(scores, "a", "b", frame) == ["apgd l2 0.5: steps 5 vs 2"]
    same = scores.assign(settings=settings(5))
    assert _setting_differences(same, "a", "b", frame) == []
