"""Cases a hostile new-user sweep found after the reliability work, each now one clear line or a fresh unit."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lipsim_bench.cli import main

ATTACK_PLUGIN = """
import torch
from lipsim_bench.attacks import Attack, register_attack

@register_attack
class {cls}(Attack):
    name = "{name}"

    def __init__(self, norm, eps, seed: int = 0):
        super().__init__(norm, eps, seed=seed)

    def perturb(self, model, x, y):
        {body}
"""


def _one_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.parametrize(
    "name, body, message",
    [
        ("oor", "return x + 5", "outside [0, 1]"),
        ("wshape", "return x[..., :-1]", "shape"),
        ("raises", "raise ValueError('boom inside attack')", "boom inside attack"),
        ("retlist", "return [x]", "AttributeError"),
    ],
)
def test_a_broken_attack_plugin_is_one_line(capsys, tmp_path: Path, name: str, body: str, message: str) -> None:
    plugin = tmp_path / f"attack_{name}.py"
    plugin.write_text(ATTACK_PLUGIN.format(cls=name.title(), name=f"bad-{name}", body=body))
    line = _one_error(
        capsys,
        [
            "--plugin",
            str(plugin),
            "--metrics",
            "pixel-l2",
            "--n",
            "4",
            "--eps",
            "0.5",
            "--no-certify",
            "--attacks",
            f"bad-{name}",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert f"attack 'bad-{name}'" in line and message in line


@pytest.mark.parametrize(
    "option, message",
    [
        ("pgd.step_size=0", "step_size must be a positive"),
        ("pgd.step_size=-1", "step_size must be a positive"),
        ("pgd.steps=99999999999", "steps must be at most"),
        ("apgd.rho=5", "rho must be in (0, 1)"),
        ("apgd.momentum=-3", "momentum in [0, 1]"),
        ("direct.step_size=0", "direct.step_size must be a positive"),
    ],
)
def test_attack_options_that_disable_or_explode_the_attack_are_refused(
    capsys, tmp_path: Path, option: str, message: str
) -> None:
    name = option.split(".")[0]
    line = _one_error(
        capsys,
        [
            "--metrics",
            "pixel-l2",
            "--n",
            "2",
            "--evaluations",
            f"natural,{name}",
            "--set",
            option,
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert message in line and not (tmp_path / "r").exists()


def test_data_csv_symlinked_out_of_the_root_is_refused(capsys, night_tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.csv"
    (night_tree / "data.csv").rename(outside)
    (night_tree / "data.csv").symlink_to(outside)
    line = _one_error(
        capsys,
        [
            "--metrics",
            "pixel-l2",
            "--dataset",
            f"night:{night_tree}",
            "--evaluations",
            "natural",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert "leads outside the dataset root" in line


def test_a_nul_byte_in_a_path_is_refused(capsys, night_tree: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(night_tree / "data.csv", dtype=str)
    frame.loc[6, "ref_path"] = "ref/000/\x00.png"
    frame.to_csv(night_tree / "data.csv", index=False)
    line = _one_error(
        capsys,
        [
            "--metrics",
            "pixel-l2",
            "--dataset",
            f"night:{night_tree}",
            "--evaluations",
            "natural",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert "triplet 6" in line  # one line naming the triplet (its path cannot exist), never a traceback


def test_votes_that_do_not_sum_to_one_are_refused(capsys, night_tree: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(night_tree / "data.csv", dtype=str)
    frame.loc[6, ["left_vote", "right_vote"]] = ["0.9", "0.9"]
    frame.to_csv(night_tree / "data.csv", index=False)
    line = _one_error(
        capsys,
        [
            "--metrics",
            "pixel-l2",
            "--dataset",
            f"night:{night_tree}",
            "--evaluations",
            "natural",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert "do not sum to 1" in line


def test_an_image_changed_in_place_is_a_new_unit(capsys, night_tree: Path, tmp_path: Path) -> None:
    argv = [
        "--metrics",
        "pixel-l2",
        "--dataset",
        f"night:{night_tree}",
        "--evaluations",
        "natural",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 0
    capsys.readouterr()
    ref = night_tree / "ref" / "000" / "006.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(ref)
    os.utime(ref, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert main(argv) == 0
    assert "computed all 1 unit(s)" in capsys.readouterr().out


def test_a_plugin_that_exits_at_import_is_one_line(capsys, tmp_path: Path) -> None:
    plugin = tmp_path / "exits.py"
    plugin.write_text("raise SystemExit(0)\n")
    assert "exits.py failed to import (SystemExit" in _one_error(capsys, ["--plugin", str(plugin), "--n", "2"])


def test_an_attack_without_a_name_is_one_line(capsys, tmp_path: Path) -> None:
    plugin = tmp_path / "noname.py"
    plugin.write_text(
        "from attacks import Attack, register_attack\n\n@register_attack\nclass NoName(Attack):\n    def perturb(self, model, x, y):\n        return x\n"
    )
    assert "needs a `name` class attribute" in _one_error(capsys, ["--plugin", str(plugin), "--n", "2"])


@pytest.mark.parametrize(
    "argv", [["--n", "0"], ["--batch-size", "0"], ["--seed", "abc"], ["--steps", "0"], ["report"], ["list", "--nope"]]
)
def test_option_parse_errors_are_one_line(capsys, argv: list[str]) -> None:
    line = _one_error(capsys, argv)
    assert line.startswith("error: ") and "--help" in line


def test_options_for_evaluations_that_do_not_run_are_refused(capsys) -> None:
    assert "--histogram-eps is given" in _one_error(
        capsys, ["--metrics", "pixel-l2", "--n", "2", "--histogram-eps", "0.3"]
    )
    assert "--certify-eps is given" in _one_error(
        capsys, ["--metrics", "pixel-l2", "--n", "2", "--certify-eps", "0.1", "--no-certify"]
    )


def _small_run(capsys, out: Path) -> None:
    assert main(["--metrics", "pixel-l2", "--n", "3", "--evaluations", "natural,certified", "--out", str(out)]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("content", [b"null", b"[]", b"\xff\xfe\x00garbage", b'{"format": 4, "unit": '])
def test_report_over_a_damaged_record_json_is_no_traceback(capsys, tmp_path: Path, content: bytes) -> None:
    out = tmp_path / "run"
    _small_run(capsys, out)
    record = sorted((out / "records").glob("pixel-l2__natural__*.json"))[0]
    record.write_bytes(content)
    code = main(["report", str(out), "--out", str(tmp_path / "rep")])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert code == 0 and "certified" in (tmp_path / "rep" / "scores.md").read_text()


@pytest.mark.parametrize("damage", ["garbage", "empty", "score"])
def test_plot_over_damaged_csvs_is_one_line(capsys, tmp_path: Path, damage: str) -> None:
    out = tmp_path / "run"
    _small_run(capsys, out)
    scores = out / "scores.csv"
    if damage == "garbage":
        scores.write_text(scores.read_text() + 'garbage,"unterminated\n')
    elif damage == "empty":
        scores.write_text("")
    else:
        frame = pd.read_csv(scores)
        frame["score"] = frame["score"].astype(object)
        frame.loc[0, "score"] = "abc"
        frame.to_csv(scores, index=False)
    assert "cannot plot" in _one_error(capsys, ["plot", str(out), "--out", str(tmp_path / "p")])


# -- the Python API refuses what the CLI refuses, with the same line ---------------------------------------------

SAME_REQUEST = [  # (CLI options, evaluate() keywords, the words both lines hold)
    (["--evaluations", "natural,apgd", "--eps", ""], dict(evaluations=["natural", "apgd"], eps=[]), "eps is empty"),
    (["--device", "gpu"], dict(device="gpu"), "'gpu' is not a device; use cpu, cuda or cuda:K"),
    (["--device", "meta"], dict(device="meta"), "the benchmark runs on cpu or cuda (cuda:K), not meta"),
    (["--metrics", "pixel-l2,pixel-l2"], dict(metric=["pixel-l2", "pixel-l2"]), "metric 'pixel-l2' is named twice"),
    (["--seed", "-1"], dict(seed=-1), "seed (--seed) must be an integer from 0"),
    (["--split", ""], dict(split=""), "split (--split) must be a split's name"),
    (
        ["--evaluations", "natural,apgd", "--norm", "linf", "--eps", "2"],
        dict(evaluations=["natural", "apgd"], norm="linf", eps=[2]),
        "linf radius 2 is larger than 1",
    ),
    (
        ["--evaluations", "natural,apgd", "--eps", "0.5,0.5"],
        dict(evaluations=["natural", "apgd"], eps=[0.5, 0.5]),
        "eps 0.5 is given twice",
    ),
    (
        ["--evaluations", "natural,apgd", "--verify", "--set", "apgd.skip_proven=true"],
        dict(evaluations=["natural", "apgd"], verify=True, apgd={"skip_proven": True}),
        "attacks every triplet, but apgd.skip_proven=true",
    ),
    (
        ["--evaluations", "natural,apgd", "--set", "apgd.steps=0"],
        dict(evaluations=["natural", "apgd"], apgd={"steps": 0}),
        "attack 'apgd' rejects its options",
    ),
    (
        ["--evaluations", "natural,apgd", "--set", "apgd.stepz=1"],
        dict(evaluations=["natural", "apgd"], apgd={"stepz": 1}),
        "evaluation 'apgd' has no option 'stepz'",
    ),
    (
        ["--evaluations", "natural", "--precision", "fp16"],
        dict(evaluations=["natural"], precision="fp16"),
        "--precision fp16 needs a CUDA device",
    ),
]


@pytest.mark.parametrize(("argv", "kwargs", "words"), SAME_REQUEST, ids=[w[:30] for _, _, w in SAME_REQUEST])
def test_the_api_refuses_what_the_cli_refuses(
    capsys, tmp_path: Path, monkeypatch, argv: list[str], kwargs: dict, words: str
) -> None:
    import torch

    import lipsim_bench as bench
    from lipsim_bench.errors import BenchError

    if "fp16" in argv and torch.cuda.is_available():
        pytest.skip("fp16 runs where CUDA is")
    monkeypatch.chdir(tmp_path)
    cli = _one_error(capsys, ["--metrics", "pixel-l2", "--n", "2", *argv, "--out", str(tmp_path / "cli")])
    with pytest.raises(BenchError) as caught:
        bench.evaluate(**{"metric": "pixel-l2", "n": 2, **kwargs})
    assert words in cli and words in str(caught.value), (cli, str(caught.value))
    assert list(tmp_path.iterdir()) == []
