"""A run killed with SIGKILL loses at most the unit in flight; the rerun's tables equal an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lipsim_bench.cli import main
from lipsim_bench.metrics import registry

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


def _args(dataset: Path, out: Path) -> list[str]:
    return [
        "run_bench.py",
        "--metrics",
        "pixel-l2,lipsim-tiny",
        "--dataset",
        f"night:{dataset}",
        "--batch-size",
        "2",
        "--steps",
        "40",
        "--eps",
        "0.5,1,2,3",
        "--out",
        str(out),
    ]


def _records(out: Path) -> list[Path]:
    return sorted((out / "records").glob("*.json")) if (out / "records").is_dir() else []


def test_sigkill_mid_run_then_rerun_equals_uninterrupted(night_tree: Path, tmp_path: Path) -> None:
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    total_units = 2 * (1 + 1 + 4)  # metrics x (natural, certified, 4 attack eps)
    proc = subprocess.Popen(
        [sys.executable, *_args(night_tree, killed)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while len(_records(killed)) < 7 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until lipsim-tiny's units have started
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(_records(killed))
    assert 0 < done_before < total_units, "the kill must land mid-run for this test to mean anything"
    for path in _records(killed):  # every stored record is whole (atomic rename), never half-written
        json.loads(path.read_text())

    rerun = subprocess.run(
        [sys.executable, *_args(night_tree, killed)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    reference = subprocess.run(
        [sys.executable, *_args(night_tree, clean)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert reference.returncode == 0, reference.stderr[-2000:]
    for name in ("scores.csv", "triplets.csv"):
        assert (killed / name).read_bytes() == (clean / name).read_bytes(), name
    log = (killed / "run.log").read_text()
    assert log.count("reused:") == done_before  # the rerun skipped exactly what was stored
    assert len(_records(killed)) == total_units


def test_new_weights_make_new_units(capsys, night_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights' fingerprint is part of every key: other weights never reuse stored numbers."""
    argv = [
        "--metrics",
        "lipsim-tiny",
        "--dataset",
        f"night:{night_tree}",
        "--attacks",
        "none",
        "--no-certify",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(argv) == 0
    assert main(argv) == 0
    log = (tmp_path / "run" / "run.log").read_text()
    assert log.count("computed:") == 1 and log.count("reused:") == 1
    spec = registry.get_metric_spec("lipsim-tiny")
    monkeypatch.setitem(
        registry.METRICS._entries,
        "lipsim-tiny",
        __import__("dataclasses").replace(spec, fingerprint=lambda: "sha256:other"),
    )
    assert main(argv) == 0
    log = (tmp_path / "run" / "run.log").read_text()
    assert log.count("computed:") == 2
    capsys.readouterr()
