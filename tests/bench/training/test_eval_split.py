"""The split training scores after each epoch: validation by default (recipes are chosen on it), test only with a
warning, and the split named in the output and in train_config.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from lipsim_bench.cli import main
from lipsim_bench.datasets.sample import build_sample_dataset
from lipsim_bench.training import cli as train_cli
from lipsim_bench.training.evaluate import resolve_eval_split


@pytest.fixture(scope="module")
def mini_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_dataset(tmp_path_factory.mktemp("sample") / "s", n_train=8, n_test=4, n_val=6, progress=False)


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_the_default_eval_split_is_the_validation_split(capsys: pytest.CaptureFixture) -> None:
    assert resolve_eval_split("sample", None) == ("val", None)
    assert resolve_eval_split("night", None) == ("val", None)  # NIGHT's own val split
    assert resolve_eval_split("sample", "train") == ("train", None)
    assert capsys.readouterr().err == ""


def test_scoring_the_test_split_during_training_warns_in_one_line(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    split, line = resolve_eval_split("sample", "test")
    assert split == "test" and _warnings(capsys.readouterr().err) == [line]
    assert "not a fair test number" in line and "--eval-split val" in line
    # a dataset without a validation split: its test split (the one the benchmark scores), with the warning
    split, line = resolve_eval_split(f"bapps:{tmp_path}", None)
    assert split == "all" and _warnings(capsys.readouterr().err) == [line]
    assert "not a fair test number" in line and "has no val split" in line


def test_night_val_split_is_read_by_default(night_tree: Path, capsys: pytest.CaptureFixture) -> None:
    args = argparse.Namespace(eval_dataset=f"night:{night_tree}", eval_split=None, eval_n=None, quiet=False)
    dataset = train_cli._eval_set(args)
    assert (dataset.split, len(dataset), args.eval_split) == ("val", 2, "val")
    assert "eval: night's val split (2 triplets)" in capsys.readouterr().out


def test_finetune_scores_val_by_default_and_names_the_split(
    mini_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["train", "finetune", "--metric", "lipsim-tiny", "--dataset", f"sample:{mini_sample}", "--split", "train"]
    argv += ["--eval-dataset", f"sample:{mini_sample}", "--batch-size", "4", "--max-steps", "1", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "val")]) == 0
    captured = capsys.readouterr()
    assert "eval: sample's val split (6 triplets) is scored after each epoch" in captured.out
    assert _warnings(captured.err) == []
    config = json.loads((tmp_path / "val" / "train_config.json").read_text())
    assert config["eval"] == {"dataset": f"sample:{mini_sample}", "split": "val", "n_triplets": 6}
    assert config["args"]["eval_split"] == "val" and config["final"]["eval_2afc"] is not None

    assert main([*argv, "--eval-split", "test", "--out", str(tmp_path / "test")]) == 0
    captured = capsys.readouterr()
    assert "eval: sample's test split (4 triplets)" in captured.out
    assert len(_warnings(captured.err)) == 1 and "not a fair test number" in captured.err
    assert json.loads((tmp_path / "test" / "train_config.json").read_text())["eval"]["split"] == "test"
