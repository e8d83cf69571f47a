"""Bad requests and a misbehaving machine: one line, exit 2 (143 for SIGTERM), nothing computed is lost."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import sys
from pathlib import Path

import pytest

from lipsim_bench.cli import main

BASE = ["--metrics", "pixel-l2", "--evaluations", "natural", "--batch-size", "2"]


def _fails(capsys: pytest.CaptureFixture, argv: list[str], *words: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.strip().split("\n") if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--metrics", "pixel-l2,pixel-l2"], ("'pixel-l2' is named twice", "--metrics")),
        (["--evaluations", "natural,apgd", "--eps", "1,1"], ("eps 1 is given twice", "--eps")),
        (["--evaluations", "natural,apgd", "--threat", "l2:1", "--threat", "l2:1"], ("given twice", "--threat")),
        (["--evaluations", "natural,apgd,apgd"], ("'apgd' is named twice",)),
        (["--seed", "-1"], ("--seed", "-1")),
        (["--evaluations", "natural,apgd", "--eps", "1e308"], ("--eps", "larger than")),
        (["--evaluations", "natural,apgd", "--norm", "linf", "--eps", "2"], ("linf radius 2 is larger than 1",)),
        (["--evaluations", "natural,certified", "--certify-eps", "1e308"], ("--certify-eps", "larger than")),
        (["--evaluations", "natural,direct", "--histogram-eps", "1e308"], ("--histogram-eps", "larger than")),
        (
            ["--evaluations", "natural,apgd", "--set", "apgd.steps=5", "--set", "apgd.steps=7"],
            ("apgd.steps is given twice", "5 and 7"),
        ),
        (["--plugin", "."], ("--plugin .", "is a folder")),
    ],
)
def test_a_bad_request_fails_before_any_work(
    capsys, night_tree: Path, tmp_path: Path, extra: list[str], words: tuple[str, ...]
) -> None:
    argv = [a for a in BASE if a not in ("--metrics", "pixel-l2")] if "--metrics" in extra else list(BASE)
    if "--evaluations" in extra:
        i = argv.index("--evaluations")
        del argv[i : i + 2]
    _fails(capsys, argv + extra + ["--dataset", f"night:{night_tree}", "--out", str(tmp_path / "run")], *words)
    assert not (tmp_path / "run").exists()


def test_attacks_named_twice_fail_in_one_line(capsys, night_tree: Path, tmp_path: Path) -> None:
    _fails(
        capsys, ["--metrics", "pixel-l2", "--attacks", "apgd,apgd", "--dataset", f"night:{night_tree}"], "named twice"
    )


def test_an_empty_out_is_refused(capsys, night_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(BASE + ["--dataset", f"night:{night_tree}", "--out", ""])
    err = capsys.readouterr().err
    assert code == 2 and "--out: is empty" in err and len(err.strip().splitlines()) == 1  # one line since OneLineParser
    assert not (tmp_path / "records").exists()


def test_out_that_is_a_file_fails_in_one_line(capsys, night_tree: Path, tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.write_text("not a folder")
    _fails(capsys, BASE + ["--dataset", f"night:{night_tree}", "--out", str(target)], str(target), "is a file")


def test_a_read_only_out_fails_before_any_unit(
    capsys, night_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lipsim_bench.io

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "run"))

    monkeypatch.setattr(lipsim_bench.io.tempfile, "mkstemp", refuse)  # root ignores chmod, so simulate it
    _fails(
        capsys,
        BASE + ["--dataset", f"night:{night_tree}", "--out", str(tmp_path / "run")],
        "Permission denied",
        "--out",
    )


def test_a_full_disk_mid_run_keeps_every_finished_unit_and_a_rerun_resumes(
    capsys, night_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lipsim_bench.run.records as records

    out = tmp_path / "run"
    argv = [
        "--metrics",
        "pixel-l2,convsim-tiny",
        "--evaluations",
        "natural",
        "--dataset",
        f"night:{night_tree}",
        "--out",
        str(out),
    ]
    real, calls = records.atomic_write_text, []

    def full(path: Path, text: str) -> None:
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, text)

    monkeypatch.setattr(records, "atomic_write_text", full)
    _fails(capsys, argv, "No space left on device", "rerun")
    kept = sorted((out / "records").glob("*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["unit"]["metric"] == "pixel-l2"
    assert not list((out / "records").glob(".*.tmp"))
    monkeypatch.setattr(records, "atomic_write_text", real)
    assert main(argv) == 0
    assert "reused 1 of 2 unit(s)" in capsys.readouterr().out


def test_a_cache_path_that_is_a_file_fails_in_one_line(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.write_text("")
    monkeypatch.setenv("LIPSIM_BENCH_CACHE", str(cache))
    monkeypatch.delenv("LIPSIM_BENCH_DATA", raising=False)
    _fails(capsys, BASE + ["--n", "2", "--out", str(tmp_path / "run")], "LIPSIM_BENCH_CACHE", "is a file")


def test_sigterm_ends_a_run_in_one_line_and_keeps_finished_units(
    capsys, night_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lipsim_bench.run.loop as loop

    out = tmp_path / "run"
    argv = [
        "--metrics",
        "pixel-l2,convsim-tiny",
        "--evaluations",
        "natural",
        "--dataset",
        f"night:{night_tree}",
        "--out",
        str(out),
    ]
    real, seen = loop.run_unit, []

    def terminate_second(planned, *args):
        seen.append(planned)
        if len(seen) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(planned, *args)

    monkeypatch.setattr(loop, "run_unit", terminate_second)
    before = signal.getsignal(signal.SIGTERM)
    assert main(argv) == 143
    err = capsys.readouterr().err
    assert err.strip().split("\n")[-1].startswith("terminated") and "rerun the same command to resume" in err
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the run's only
    assert len(list((out / "records").glob("*.json"))) == 1
    monkeypatch.setattr(loop, "run_unit", real)
    assert main(argv) == 0 and "reused 1 of 2" in capsys.readouterr().out


def test_outputs_honour_the_umask(capsys, night_tree: Path, tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        assert main(BASE + ["--dataset", f"night:{night_tree}", "--out", str(tmp_path / "run")]) == 0
    finally:
        os.umask(old)
    for name in ("scores.csv", "scores.md", "triplets.csv"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o664, name
    record = next((tmp_path / "run" / "records").glob("*.json"))
    assert stat.S_IMODE(record.stat().st_mode) == 0o664


def test_an_error_mid_bar_starts_on_a_fresh_line(
    capsys, night_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lipsim_bench.errors import BenchError
    from lipsim_bench.evaluations import natural

    def broken(self, metric, batches, ctx):
        for _ in batches:
            sys.stderr.write("\rpixel-l2 natural:  50%|#####     | 2/4")  # what a bar leaves on its line
            raise BenchError("distances are not finite")

    monkeypatch.setattr(natural.Natural, "run", broken)
    line = _fails(capsys, BASE + ["--dataset", f"night:{night_tree}", "--out", str(tmp_path / "run")], "not finite")
    assert line.startswith("error:")


# -- contradicting options: a shorthand flag and --set for the same option must agree ---------------------------

ATTACKING = ["--metrics", "pixel-l2", "--n", "2", "--eps", "0.5"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (
            ["--evaluations", "natural,apgd", "--steps", "20", "--set", "apgd.steps=100"],
            ("--steps 20 and --set apgd.steps=100 disagree",),
        ),
        (
            ["--evaluations", "natural,pgd", "--steps", "20", "--set", "pgd.steps=10"],
            ("--steps 20 and --set pgd.steps=10 disagree",),
        ),
        (
            ["--evaluations", "natural,smoothing-attack", "--steps", "20", "--set", "smoothing-attack.steps=5"],
            ("--steps 20 and --set smoothing-attack.steps=5",),
        ),
        (
            ["--evaluations", "natural,direct", "--steps", "5", "--set", "direct.steps=6"],
            ("--steps 5 and --set direct.steps=6 disagree",),
        ),
        (
            ["--evaluations", "natural,apgd", "--restarts", "2", "--set", "apgd.restarts=1"],
            ("--restarts 2 and --set apgd.restarts=1",),
        ),
        (
            ["--evaluations", "natural,certified", "--certify-eps", "0.5", "--set", "certified.eps=1"],
            ("--certify-eps 0.5 and --set certified.eps=1",),
        ),
        (
            ["--histogram", "--no-certify", "--attacks", "none", "--histogram-eps", "0.5", "--set", "direct.eps=1"],
            ("--histogram-eps 0.5 and --set direct.eps=1",),
        ),
        (
            ["--evaluations", "natural,apgd", "--verify", "--set", "apgd.skip_proven=true"],
            ("--verify", "apgd.skip_proven=true", "drop one"),
        ),
    ],
)
def test_a_shorthand_and_a_set_that_disagree_are_refused(
    capsys, tmp_path: Path, extra: list[str], words: tuple[str, ...]
) -> None:
    _fails(
        capsys,
        ATTACKING + extra + ["--out", str(tmp_path / "run")],
        *words,
        "disagree" if "--verify" not in extra else "",
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "extra",
    [
        ["--evaluations", "natural,apgd", "--steps", "20", "--set", "apgd.steps=20"],
        ["--evaluations", "natural,certified", "--certify-eps", "0.5,1", "--set", "certified.eps=1/2,1"],
        [
            "--evaluations",
            "natural,certified",
            "--set",
            "certified.eps=0.25",
        ],  # --eps is the certified radii only by default
    ],
)
def test_a_shorthand_and_a_set_that_agree_run(capsys, tmp_path: Path, extra: list[str]) -> None:
    assert main(ATTACKING + extra + ["--out", str(tmp_path / "run"), "--dry-run"]) == 0, capsys.readouterr().err


def test_verification_mode_from_the_environment_contradicts_skip_proven(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIPSIM_BENCH_VERIFY", "yes")
    _fails(
        capsys,
        ATTACKING + ["--evaluations", "natural,apgd", "--set", "apgd.skip_proven=true", "--out", str(tmp_path / "r")],
        "LIPSIM_BENCH_VERIFY=yes attacks every triplet, but apgd.skip_proven=true",
    )


# -- environment switches: the documented spellings only -------------------------------------------------------

SWITCH_NAMES = ["LIPSIM_BENCH_VERIFY", "LIPSIM_BENCH_RANDOM_WEIGHTS"]


@pytest.mark.parametrize("name", SWITCH_NAMES)
@pytest.mark.parametrize("value", ["2", "maybe", "ture", "enabled", "-1"])
def test_a_switch_with_an_odd_spelling_is_one_line_naming_it(
    capsys, tmp_path: Path, monkeypatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    _fails(
        capsys,
        BASE + ["--n", "2", "--out", str(tmp_path / "r")],
        f"{name}={value!r} is not an on/off value",
        "set it to 1 or 0",
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("value", "on"),
    [
        ("1", True),
        ("TRUE", True),
        (" yes ", True),
        ("On", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("OFF", False),
        ("", False),
    ],
)
def test_the_documented_spellings_switch(monkeypatch, value: str, on: bool) -> None:
    from lipsim_bench.locations import env_switch
    from lipsim_bench.run.plan import random_weights_requested
    from lipsim_bench.run.spec import verify_requested

    for name in SWITCH_NAMES:
        monkeypatch.setenv(name, value)
    assert env_switch("LIPSIM_BENCH_VERIFY") is on and verify_requested() is on and random_weights_requested() is on


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
def test_an_odd_embedding_cache_budget_is_one_line(capsys, tmp_path: Path, monkeypatch, value: str) -> None:
    monkeypatch.setenv("LIPSIM_BENCH_EMBED_CACHE_MB", value)
    _fails(
        capsys,
        BASE + ["--n", "2", "--out", str(tmp_path / "r")],
        f"LIPSIM_BENCH_EMBED_CACHE_MB={value!r} is not a number of megabytes",
    )


@pytest.mark.parametrize("value", ["none", "NONE", "off", "0", "false", "No"])
def test_the_device_profile_switches_off_with_the_documented_words(monkeypatch, value: str) -> None:
    from lipsim_bench.protocol.device_profile import PROFILE_ENV, load_device_profile

    monkeypatch.setenv(PROFILE_ENV, value)
    assert load_device_profile() is None


def test_a_missing_device_profile_says_how_to_switch_it_off(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIPSIM_BENCH_DEVICE_PROFILE", str(tmp_path / "nope.json"))
    _fails(
        capsys,
        BASE + ["--n", "2", "--dry-run", "--out", str(tmp_path / "r")],
        "LIPSIM_BENCH_DEVICE_PROFILE=none for no profile",
    )


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--evaluations", "natural,certified", "--steps", "20"], "--steps"),
        (["--evaluations", "natural,direct", "--restarts", "2"], "--restarts"),
        (["--evaluations", "natural", "--eps", "0.5"], "--eps"),
        (["--evaluations", "natural", "--threat", "l2:0.5"], "--threat"),
    ],
)
def test_a_flag_no_evaluation_uses_warns_in_one_line(capsys, tmp_path: Path, extra: list[str], flag: str) -> None:
    assert main(["--metrics", "pixel-l2", "--n", "2", *extra, "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {flag} is given but no evaluation of this run"), (
        warnings
    )


def test_a_flag_an_evaluation_uses_does_not_warn(capsys, tmp_path: Path) -> None:
    argv = [
        "--metrics",
        "pixel-l2",
        "--n",
        "2",
        "--evaluations",
        "natural,certified,apgd",
        "--eps",
        "0.5",
        "--steps",
        "3",
        "--restarts",
        "1",
        "--out",
        str(tmp_path / "r"),
        "--dry-run",
    ]
    assert main(argv) == 0 and "warning:" not in capsys.readouterr().err


@pytest.mark.parametrize(("name", "value"), [("WORLD_SIZE", "abc"), ("WORLD_SIZE", "-2"), ("WORLD_SIZE", "1.5")])
def test_an_odd_torchrun_variable_is_one_line(capsys, tmp_path: Path, monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    _fails(
        capsys, BASE + ["--n", "2", "--out", str(tmp_path / "r")], f"{name}={value!r} is not a whole number", "unset it"
    )
