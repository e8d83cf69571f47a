"""stlpips weights: the wheel's file, pinned and loaded strictly; every failure is one line naming the file and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from lipsim_bench.metrics import WeightsUnavailableError
from lipsim_bench.metrics.fingerprint import sha256_file
from lipsim_bench.metrics.stlpips import metric as S
from lipsim_bench.metrics.weightfiles import WeightsFileError


@pytest.fixture
def local_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The alex file copied to a temporary place the loader then reads instead of the wheel's."""
    path = tmp_path / "alex_shift_tolerant.pth"
    shutil.copyfile(S.wheel_weights("alex"), path)
    monkeypatch.setattr(S, "wheel_weights", lambda net: path)
    return path


def assert_one_line(error: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_the_pinned_hashes_are_the_wheels_files() -> None:
    for net, expected in S.WEIGHTS_SHA256.items():
        assert sha256_file(S.wheel_weights(net)) == expected


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "wheel_weights", lambda net: None)
    with pytest.raises(WeightsUnavailableError) as error:
        S.load_published("alex")
    assert_one_line(error, "stlpips-pytorch", "pip install")


def test_missing_file_names_it(local_copy: Path) -> None:
    local_copy.unlink()
    with pytest.raises(WeightsFileError) as error:
        S.load_published("alex")
    assert_one_line(error, str(local_copy), "not found", "pip install --force-reinstall")


def test_damaged_file_fails_its_pin(local_copy: Path) -> None:
    data = bytearray(local_copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    local_copy.write_bytes(bytes(data))
    with pytest.raises(WeightsFileError) as error:
        S.load_published("alex")
    assert_one_line(error, str(local_copy), "damaged", "pip install --force-reinstall")


@pytest.mark.parametrize("change", ["drop", "extra"])
def test_every_key_is_loaded_strictly(local_copy: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """A file without one key (or with one too many) is refused, even past its pin: the package's own loader
    (strict=False) would run with a freshly initialised layer instead."""
    state = torch.load(local_copy, map_location="cpu", weights_only=True)
    if change == "drop":
        del state["net.slice3.9.bias"]
    else:
        state["lin5.model.1.weight"] = torch.ones(1, 8, 1, 1)
    torch.save(state, local_copy)
    monkeypatch.setitem(S.WEIGHTS_SHA256, "alex", sha256_file(local_copy))
    with pytest.raises(WeightsFileError) as error:
        S.load_published("alex")
    assert_one_line(error, str(local_copy), "does not fit", "slice3.9.bias" if change == "drop" else "lin5")


def test_a_wrong_shape_is_refused(local_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = torch.load(local_copy, map_location="cpu", weights_only=True)
    state["lin0.model.1.weight"] = torch.ones(1, 32, 1, 1)
    torch.save(state, local_copy)
    monkeypatch.setitem(S.WEIGHTS_SHA256, "alex", sha256_file(local_copy))
    with pytest.raises(WeightsFileError) as error:
        S.load_published("alex")
    assert_one_line(error, str(local_copy), "does not fit")


def test_a_run_with_a_damaged_file_exits_2_in_one_line(local_copy: Path, tmp_path: Path, capsys) -> None:
    from lipsim_bench.cli import main

    data = bytearray(local_copy.read_bytes())
    data[-100] ^= 0xFF
    local_copy.write_bytes(bytes(data))
    argv = ["--metrics", "stlpips-alex", "--n", "2", "--evaluations", "natural", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and str(local_copy) in err[0] and "pip install --force-reinstall" in err[0], err
