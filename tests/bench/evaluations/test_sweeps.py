"""Swept options: ``--set smoothing.sigma=0.12,0.25,0.5`` runs one unit per sigma, each its own table column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lipsim_bench as bench
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.options import expand_sweeps
from lipsim_bench.report.collect import read_records
from lipsim_bench.run.spec import RunSpec, resolve
from lipsim_bench.run_args import parse_run_args
from lipsim_bench.run_request import spec_from_args as config_from_args


def test_expand_sweeps_makes_one_option_set_per_value_in_order() -> None:
    assert expand_sweeps("smoothing", ("sigma",), {"sigma": "0.12,0.25", "n": "10"}) == [
        {"sigma": "0.12", "n": "10"},
        {"sigma": "0.25", "n": "10"},
    ]
    assert expand_sweeps("smoothing", ("sigma",), {"sigma": [0.5, 0.25]}) == [{"sigma": 0.5}, {"sigma": 0.25}]
    assert expand_sweeps("smoothing", ("sigma",), {"n": 3}) == [{"n": 3}]  # the default is one value
    assert expand_sweeps("natural", (), {"sigma": "1,2"}) == [{"sigma": "1,2"}]  # only declared options are swept
    with pytest.raises(BenchError, match="at least one value"):
        expand_sweeps("smoothing", ("sigma",), {"sigma": []})


def test_each_sigma_is_its_own_evaluation_with_its_own_column_and_key() -> None:
    spec = RunSpec(
        metrics=["pixel-l2"], evaluations=["natural", "smoothing"], options={"smoothing": {"sigma": "0.12,0.25,1/2"}}
    )
    resolved = resolve(spec, "sample")
    smoothing = [ev for ev in resolved.evaluations if ev.name == "smoothing"]
    assert [ev.options.sigma for ev in smoothing] == [0.12, 0.25, 0.5]
    assert [ev.column for ev in resolved.evaluations] == [
        "natural",
        "smoothing(sigma=0.12)",
        "smoothing(sigma=0.25)",
        "smoothing(sigma=0.5)",
    ]


def test_different_values_never_share_a_column() -> None:
    spec = RunSpec(
        metrics=["pixel-l2"], evaluations=["smoothing"], options={"smoothing": {"sigma": [0.12, 0.1200001, 1 / 3]}}
    )
    assert [ev.column for ev in resolve(spec, "sample").evaluations] == [
        "smoothing(sigma=0.12)",
        "smoothing(sigma=0.1200001)",
        "smoothing(sigma=0.3333333333333333)",
    ]


def test_numpy_values_sweep_like_lists() -> None:
    spec = RunSpec(
        metrics=["pixel-l2"], evaluations=["smoothing"], options={"smoothing": {"sigma": np.array([0.5, 0.25])}}
    )
    assert [ev.options.sigma for ev in resolve(spec, "sample").evaluations] == [0.5, 0.25]


@pytest.mark.parametrize(
    "values, message",
    [
        ("0.25,1/4", r"smoothing\(sigma=0.25\) is asked for twice"),
        ("0.25,-1", "smoothing.sigma=-1.0 is invalid"),
        ("0.25,x", "smoothing.sigma: 'x' is not a number"),
    ],
)
def test_a_bad_or_repeated_value_is_one_line(values: str, message: str) -> None:
    with pytest.raises(BenchError, match=message) as info:
        config_from_args(
            parse_run_args(
                ["--metrics", "pixel-l2", "--evaluations", "natural,smoothing", "--set", f"smoothing.sigma={values}"]
            )
        )
    assert "\n" not in str(info.value)


def test_options_that_are_not_swept_still_take_one_value() -> None:
    with pytest.raises(BenchError, match="smoothing.n: '10,20' is not an integer \\(it takes one value"):
        config_from_args(
            parse_run_args(
                ["--metrics", "pixel-l2", "--evaluations", "natural,smoothing", "--set", "smoothing.n=10,20"]
            )
        )


def test_two_runs_of_different_sigmas_into_one_folder_keep_both(tmp_path: Path) -> None:
    """Cells are keyed by the column: a second sigma adds columns, it never supersedes the first one's."""
    common = dict(metric="pixel-l2", dataset="sample", n=3, evaluations=["natural", "smoothing"], out=tmp_path / "run")
    bench.evaluate(**common, smoothing={"sigma": 0.25, "n": 20, "n0": 5, "eps": (0.25,)})
    bench.evaluate(**common, smoothing={"sigma": [0.12, 0.5], "n": 20, "n0": 5, "eps": (0.25,)})
    folder = read_records([tmp_path / "run"])  # what `run_bench.py report` reads: every record of the folder
    assert set(folder.scores["evaluation"]) == {
        "natural",
        "smoothing(sigma=0.12)",
        "smoothing(sigma=0.25)",
        "smoothing(sigma=0.5)",
    }
    assert not any("superseded" in note for note in folder.notes)
    log = (tmp_path / "run" / "run.log").read_text()
    assert (
        "computed: pixel-l2 smoothing(sigma=0.12) score" in log
        and "computed: pixel-l2 smoothing(sigma=0.5) score" in log
    )
    rows = folder.triplets.drop_duplicates(["evaluation", "id"])
    assert rows.groupby("evaluation")["id"].nunique().to_dict() == {
        "natural": 3,
        "smoothing(sigma=0.12)": 3,
        "smoothing(sigma=0.25)": 3,
        "smoothing(sigma=0.5)": 3,
    }
