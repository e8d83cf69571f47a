"""The dry run times measured metrics from benchmarks/profile_device.py's file, the rest from FLOPs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lipsim_bench.attacks.base import ThreatModel
from lipsim_bench.cli import main
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import get_evaluation
from lipsim_bench.evaluations.options import build_options
from lipsim_bench.protocol.cost import evaluation_flops, pass_counts, seconds
from lipsim_bench.protocol.device_profile import PROFILE_ENV, load_device_profile
from lipsim_bench.protocol.estimate import Estimator

FWD, FWD_BWD = 30.0, 10.0  # images/s of the made-up device


def write_profile(
    path: Path, metrics: dict | None = None, fwd: float = FWD, fwd_bwd: float = FWD_BWD, **changes: object
) -> Path:
    rates = {"forward_images_per_s": fwd, "forward_backward_images_per_s": fwd_bwd, "input_size": 64}
    profile = {
        "format": 1,
        "device": "Test GPU 9000",
        "torch": "2.x",
        "measured_at": "2026-01-02T03:04:05+00:00",
        "precision": "bf16",
        "batch": 32,
        "metrics": metrics if metrics is not None else {"convsim-tiny": rates},
    }
    path.write_text(json.dumps({**profile, **changes}))
    return path


def evaluation(name: str, **values: object):
    cls = get_evaluation(name)
    return cls(build_options(cls.Options, name, values))


def test_measured_rates_time_clean_passes_and_attack_steps(tmp_path: Path) -> None:
    profile = load_device_profile(write_profile(tmp_path / "p.json"))
    estimator = Estimator((ThreatModel("l2", 1.0),), profile)
    natural = estimator.estimate("convsim-tiny", evaluation("natural"), None, 100)
    assert natural.seconds == pytest.approx(300 / FWD)  # ref, x0, x1 through one forward each
    apgd = evaluation("apgd", steps=10, carry=False, skip_proven=False)
    attack = estimator.estimate("convsim-tiny", apgd, ThreatModel("l2", 1.0), 100)
    # 10 steps + the start's gradient per attacked triplet
    assert attack.seconds == pytest.approx(400 / FWD + 1100 / FWD_BWD) and attack.attacked is None
    assert pass_counts(apgd, 100, ThreatModel("l2", 1.0), attacked=0.5) == pytest.approx((400, 550))
    # an unmeasured metric falls back to FLOPs over the assumed GPU
    lipsim = estimator.estimate("lipsim-tiny", apgd, ThreatModel("l2", 1.0), 100)
    assert lipsim.seconds == pytest.approx(seconds(evaluation_flops("lipsim-tiny", apgd, 100, ThreatModel("l2", 1.0))))
    assert estimator.measured == {"convsim-tiny"} and estimator.assumed == {"lipsim-tiny"}
    # a metric sharing a measured architecture is measured too
    shared = load_device_profile(
        write_profile(
            tmp_path / "lipsim.json",
            {"lipsim": {"forward_images_per_s": FWD, "forward_backward_images_per_s": FWD_BWD, "input_size": 224}},
        )
    )
    assert Estimator((), shared).estimate("lipsim-margin0.2", evaluation("natural"), None, 10).seconds == pytest.approx(
        1.0
    )


def test_dry_run_says_what_is_measured_and_what_assumed(
    capsys, night_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROFILE_ENV, str(write_profile(tmp_path / "p.json", fwd=0.5, fwd_bwd=0.25)))
    argv = [
        "--metrics",
        "convsim-tiny,lipsim-tiny",
        "--dataset",
        f"night:{night_tree}",
        "--steps",
        "2",
        "--eps",
        "1",
        "--evaluations",
        "natural,apgd",
        "--set",
        "apgd.carry=false",
        "--out",
        str(tmp_path / "run"),
        "--dry-run",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        f"measured on Test GPU 9000 ({tmp_path / 'p.json'}, measured 2026-01-02T03:04:05+00:00, bf16, batch 32): convsim-tiny"
        in out
    )
    assert "assumed (FLOPs over one NVIDIA H100" in out and "): lipsim-tiny" in out
    assert "estimated time: " in out and "estimated time on one" not in out
    # 6 triplets: natural 18 images at 0.5/s; apgd 24 forward (48 s) + 2 steps x 6 fwd+bwd images at 0.25/s (48 s)
    lines = {line.split("[")[0].strip(): line.split("]")[-1].strip() for line in out.splitlines() if "]" in line}
    assert lines["convsim-tiny         natural"] == "36 s" and lines["convsim-tiny         apgd l2 1"] == "2 min"
    monkeypatch.setenv(PROFILE_ENV, "none")  # switched off: everything assumed, as before
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "estimated time on one NVIDIA H100" in out and "measured on" not in out


@pytest.mark.parametrize(
    "content, why",
    [
        ("{not json", "malformed"),
        (json.dumps({"format": 2}), "format is 2"),
        (None, "forward_backward_images_per_s is -1"),
        (
            json.dumps(
                {"format": 1, "device": "x", "measured_at": "t", "precision": "fp32", "batch": 8, "metrics": {}}
            ),
            "metrics is missing or empty",
        ),
    ],
)
def test_a_malformed_profile_is_one_line_naming_the_file_and_the_fix(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, why: str
) -> None:
    path = tmp_path / "device_profile.json"
    if content is None:
        write_profile(
            path, {"convsim-tiny": {"forward_images_per_s": 1.0, "forward_backward_images_per_s": -1, "input_size": 64}}
        )
    else:
        path.write_text(content)
    with pytest.raises(BenchError, match=why) as caught:
        load_device_profile(path)
    assert str(path) in str(caught.value) and "benchmarks/profile_device.py" in str(caught.value)
    monkeypatch.setenv(PROFILE_ENV, str(path))
    assert main(["--metrics", "convsim-tiny", "--n", "3", "--dry-run", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "profile_device.py" in err[0]


def test_the_profile_file_is_found_in_the_results_folder_or_where_the_variable_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    monkeypatch.setenv("LIPSIM_BENCH_RESULTS", str(tmp_path))
    assert load_device_profile() is None  # not measured: no file, no error
    write_profile(tmp_path / "device_profile.json")
    profile = load_device_profile()
    assert profile is not None and profile.device == "Test GPU 9000" and set(profile.metrics) == {"convsim-tiny"}
    monkeypatch.setenv(PROFILE_ENV, str(tmp_path / "elsewhere.json"))
    with pytest.raises(BenchError, match="elsewhere.json does not exist"):
        load_device_profile()


def test_what_the_profiler_writes_is_what_the_dry_run_reads(tmp_path: Path) -> None:
    """The writer and the reader agree on the schema (pixel-l2: no model, quick; the figures are not checked)."""
    import subprocess
    import sys

    script = Path(__file__).parents[3] / "benchmarks" / "profile_device.py"
    out = tmp_path / "profile.json"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "pixel-l2",
            "no-such-metric",
            "--device",
            "cpu",
            "--batch",
            "2",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "no-such-metric       failed: unknown metric" in result.stdout  # one line, and the others still measured
    profile = load_device_profile(out)
    assert (
        profile is not None and profile.device == "cpu" and profile.batch == 2 and set(profile.metrics) == {"pixel-l2"}
    )
    assert json.loads(out.read_text())["metrics"]["pixel-l2"]["input_size"] == 224
