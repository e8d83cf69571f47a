"""``--every K``: a subsample spread over the split (the smoothing preset's), keyed by its content and stated in the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lipsim_bench as bench
from lipsim_bench.cli import main
from lipsim_bench.datasets import create_dataset
from lipsim_bench.errors import BenchError
from lipsim_bench.formatting import ordinal
from lipsim_bench.report.collect import read_records
from lipsim_bench.run_args import parse_run_args
from lipsim_bench.run_request import spec_from_args as config_from_args


def test_every_keeps_the_first_and_each_kth_after_n() -> None:
    full = create_dataset("sample", "test")
    ids = [r.id for r in full.records]
    assert [r.id for r in full.every(3).records] == ids[::3] and len(full.every(3)) == 100
    assert [r.id for r in full.head(10).every(4).records] == [ids[0], ids[4], ids[8]]
    assert full.every(1) is full
    assert full.every(3).fingerprint() != full.head(100).fingerprint()  # another subset, another key


def test_a_bad_every_is_one_line(capsys) -> None:
    assert main(["--every", "0"]) == 2
    assert "--every" in capsys.readouterr().err
    for bad in (0, 2.0, "2", True):
        with pytest.raises(BenchError, match=r"every \(--every\) must be a positive integer"):
            bench.evaluate(metric="pixel-l2", every=bad)
    with pytest.raises(BenchError, match=r"n \(--n\) must be a positive number"):
        bench.evaluate(metric="pixel-l2", n="6")
    assert len(bench.evaluate(metric="pixel-l2", every=np.int64(100)).triplets) == 3  # numpy integers are integers


def test_the_run_uses_the_subsample_and_its_table_says_so(tmp_path: Path) -> None:
    result = bench.evaluate(metric="pixel-l2", n=30, every=10, evaluations=["natural"], out=tmp_path / "run")
    ids = [r.id for r in create_dataset("sample", "test").records]
    assert list(result.triplets["id"]) == [ids[0], ids[10], ids[20]]
    assert "n = 3 triplets" in result.markdown
    text = (tmp_path / "run" / "scores.md").read_text()
    assert "triplets: a subsample, every 10th triplet of the split's first 30 (--every 10)" in text


def test_dry_run_counts_the_subsample(capsys, tmp_path: Path) -> None:
    argv = ["--metrics", "pixel-l2", "--n", "300", "--every", "3", "--dry-run", "--out", str(tmp_path / "run")]
    assert main(argv) == 0  # --n 300: the bundled preset's --n 100 would leave 34
    out = capsys.readouterr().out
    assert "data: sample / test (2afc), first 300 triplets, every 3rd triplet" in out and "here: 100 triplets" in out


def test_ordinals() -> None:
    assert [ordinal(k) for k in (1, 2, 3, 4, 11, 12, 13, 21, 22, 103)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "103rd",
    ]


def test_smoothing_preset_and_overrides() -> None:
    spec = config_from_args(parse_run_args(["--preset", "smoothing"]))
    assert spec.metrics == ["pixel-l2", "convsim-tiny", "convsim-tiny-noise", "lipsim-tiny"] and spec.every == 3
    assert (
        spec.evaluations == ["natural", "certified", "smoothing", "smoothing-embed"]
        and spec.options["smoothing"]["sigma"] == "0.12,0.25,0.5"
    )
    assert spec.options["certified"]["eps"] == pytest.approx([36 / 255, 0.25, 72 / 255, 108 / 255, 0.5])
    one = config_from_args(
        parse_run_args(
            ["--preset", "smoothing", "--set", "smoothing.sigma=0.25", "--every", "1", "--metrics", "pixel-l2"]
        )
    )
    assert (one.options["smoothing"]["sigma"], one.every, one.metrics) == ("0.25", 1, ["pixel-l2"])
    natural = config_from_args(parse_run_args(["--preset", "smoothing", "--evaluations", "natural"]))
    assert natural.options == {}  # the preset's smoothing options stay out of a run without smoothing


def test_a_preset_that_sets_the_evaluations_says_so() -> None:
    with pytest.raises(
        BenchError, match="--preset smoothing sets --evaluations natural,certified,smoothing,smoothing-embed"
    ):
        config_from_args(parse_run_args(["--preset", "smoothing", "--no-certify"]))


def test_footers_describe_only_the_records_the_table_shows(tmp_path: Path) -> None:
    """A subsample run, then a full run into the same folder: the full run's cells keep the plain columns,
    the subsample's get their own (bench/report/variants.py), and only those say they are a subsample."""
    bench.evaluate(metric="pixel-l2", n=9, every=3, out=tmp_path / "run")
    bench.evaluate(metric="pixel-l2", n=9, out=tmp_path / "run")
    folder = read_records([tmp_path / "run"])
    assert folder.scores.groupby("evaluation")["n"].first().to_dict() == {"natural": 9, "natural(every=3)": 3}
    assert not any(note.startswith("triplets:") for note in folder.notes)
    assert (
        "natural(every=3): triplets: a subsample, every 3rd triplet of the split's first 9 (--every 3)" in folder.notes
    )


def test_smoothing_preset_dry_run_lists_a_unit_per_metric_and_sigma(capsys, tmp_path: Path) -> None:
    assert main(["--preset", "smoothing", "--dry-run", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "here: 100 triplets" in out and "not counted: " not in out
    for sigma in ("0.12", "0.25", "0.5"):
        assert out.count(f"smoothing sigma {sigma} n 1000 [certificate]") == 4


def test_an_n_above_the_split_is_said_in_one_warning_line(capsys, tmp_path: Path) -> None:
    argv = ["--metrics", "pixel-l2", "--n", "1000", "--evaluations", "natural", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: --n 1000 is more than the 300 triplets of sample / test: all 300 are used" in err
    assert main([*argv[:3], "300", *argv[4:]]) == 0
    assert "warning: --n" not in capsys.readouterr().err
