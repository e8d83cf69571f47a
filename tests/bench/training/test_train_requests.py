"""``run_bench.py train``: absurd options are one line (exit 2) before any work; training on the test split says so."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lipsim_bench.cli import main
from lipsim_bench.errors import BenchError
from lipsim_bench.training.config import MAX_NOISE_SIGMA
from lipsim_bench.training.distill import DistillConfig
from lipsim_bench.training.finetune import FinetuneConfig

FINETUNE = [
    "train",
    "finetune",
    "--metric",
    "lipsim-tiny",
    "--n",
    "8",
    "--batch-size",
    "4",
    "--max-steps",
    "1",
    "--no-progress",
    "--quiet",
]


def _one_error(capsys: pytest.CaptureFixture, argv: list[str], *words: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--noise-sigma", "1.5"], ("--noise-sigma 1.5 is above 1", "give a sigma in [0, 1]")),
        (["--noise-sigma", "1e9"], ("is above 1",)),
        (["--noise-sigma", "-0.1"], ("--noise-sigma must be a finite number >= 0",)),
        (["--noise-sigma", "nan"], ("--noise-sigma must be a finite number >= 0",)),
        (["--epochs", "x"], ("argument --epochs: invalid int value: 'x'", "--help")),
        (["--betas", "0.5"], ("argument --betas", "give two numbers")),
        (["--decay", "step"], ("argument --decay: invalid choice",)),
        (["--eval-batch-size", "0"], ("--eval-batch-size must be >= 1",)),
        (["--seed", "-1"], ("--seed must be an integer from 0",)),
        (["--weight-decay", "inf"], ("--weight-decay must be a finite number >= 0",)),
        (["--margin", "inf"], ("--margin must be a finite number >= 0",)),
        (["--eval-dataset", "sample", "--eval-n", "-1"], ("--eval-n must be a positive number of triplets",)),
        (["--n", "0"], ("--n must be a positive number of triplets",)),
    ],
)
def test_absurd_training_options_are_one_line_before_any_work(
    capsys, tmp_path: Path, extra: list[str], words: tuple[str, ...]
) -> None:
    argv = [a for a in FINETUNE if a not in ("--n", "8")] if "--n" in extra else FINETUNE
    _one_error(capsys, argv + extra + ["--out", str(tmp_path / "r")], *words)
    assert not (tmp_path / "r").exists()


def test_distill_refuses_an_infinite_target_scale(capsys, tmp_path: Path) -> None:
    _one_error(
        capsys,
        [
            "train",
            "distill",
            "--student",
            "lipsim-tiny",
            "--teacher",
            "convsim-tiny",
            "--images",
            "dataset:sample:train",
            "--target-scale",
            "inf",
            "--out",
            str(tmp_path / "r"),
        ],
        "--target-scale must be a positive finite number",
    )


def test_a_missing_or_mistyped_step_is_one_line(capsys) -> None:
    _one_error(capsys, ["train"], "required: {distill,finetune}")
    _one_error(capsys, ["train", "fintune"], "invalid choice: 'fintune'")


@pytest.mark.parametrize("sigma", [0.0, 0.25, MAX_NOISE_SIGMA])
def test_sigmas_up_to_the_bound_pass(tmp_path: Path, sigma: float) -> None:
    for config in (FinetuneConfig(out=tmp_path, noise_sigma=sigma), DistillConfig(out=tmp_path, noise_sigma=sigma)):
        config.validate()
    with pytest.raises(BenchError, match=r"^--noise-sigma 1.0001 is above 1"):
        FinetuneConfig(out=tmp_path, noise_sigma=1.0001).validate()
    assert MAX_NOISE_SIGMA == 1.0 and not math.isnan(MAX_NOISE_SIGMA)


def test_finetuning_on_the_test_split_warns_in_one_line(capsys, tmp_path: Path) -> None:
    assert main(FINETUNE + ["--split", "test", "--out", str(tmp_path / "test")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: finetune trains on sample's test split, the one the benchmark scores: this model's scores "
        "there will not measure generalisation; train on another split (e.g. train)"
    ]
    assert main(FINETUNE + ["--split", "train", "--out", str(tmp_path / "train")]) == 0
    assert "warning:" not in capsys.readouterr().err


@pytest.mark.slow  # two distillations (about 25 s) for one warning line
def test_distilling_on_test_split_images_warns_in_one_line(capsys, tmp_path: Path) -> None:
    argv = [
        "train",
        "distill",
        "--student",
        "lipsim-tiny",
        "--teacher",
        "convsim-tiny",
        "--batch-size",
        "4",
        "--max-steps",
        "1",
        "--no-progress",
        "--quiet",
    ]
    assert main(argv + ["--images", "dataset:sample:test", "--out", str(tmp_path / "test")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: distill (--images) trains on sample's test split"), (
        warnings
    )
    assert main(argv + ["--images", "dataset:sample:train", "--out", str(tmp_path / "train")]) == 0
    assert "warning:" not in capsys.readouterr().err
