"""LPIPS' AlexNet file (torch hub cache): checked against the sha256 its name pins, read weights-only, and
every damaged or crafted file is one clear line (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

lpips = pytest.importorskip("lpips")

from lipsim_bench.errors import BenchError  # noqa: E402
from lipsim_bench.metrics import get_metric_spec  # noqa: E402
from lipsim_bench.metrics.fingerprint import sha256_file  # noqa: E402
from lipsim_bench.metrics.foundation import lpips as L  # noqa: E402
from lipsim_bench.metrics.foundation import weights as W  # noqa: E402
from tests.metrics.weightfile_cases import BREAKERS, assert_one_clean_line, evil_checkpoint  # noqa: E402


@pytest.fixture
def hub_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the adapter looks for AlexNet, plus a good (random, half-precision) stand-in to damage."""
    import torchvision

    monkeypatch.setenv(W.ENV_WEIGHTS_DIR, str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    target = tmp_path / "weights" / "torch" / "hub" / "checkpoints" / L.ALEXNET_FILE
    target.parent.mkdir(parents=True)
    torch.manual_seed(1)
    torch.save(
        {k: v.half() for k, v in torchvision.models.alexnet(weights=None).state_dict().items()}, tmp_path / "good.pth"
    )
    return target


def _fails(target: Path) -> str:
    with pytest.raises(BenchError) as info:
        get_metric_spec("lpips").factory()
    assert_one_clean_line(str(info.value), target)
    assert "fetch lpips" in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("damage", sorted(BREAKERS))
def test_damaged_alexnet_file_fails_its_pin(damage: str, hub_file: Path, tmp_path: Path) -> None:
    BREAKERS[damage](tmp_path / "good.pth", hub_file)
    message = _fails(hub_file)
    assert f"expected {L.ALEXNET_SHA256_PREFIX}" in message


@pytest.mark.parametrize("damage", sorted(BREAKERS))
def test_damaged_alexnet_file_is_refused_even_past_the_pin(
    damage: str, hub_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the pin (here: a pin that matches the damaged file) the CRC and format checks still catch it."""
    BREAKERS[damage](tmp_path / "good.pth", hub_file)
    monkeypatch.setattr(L, "ALEXNET_SHA256_PREFIX", sha256_file(hub_file)[:8])
    _fails(hub_file)


def test_crafted_alexnet_file_runs_nothing(hub_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "ran"
    evil_checkpoint(hub_file, marker)
    monkeypatch.setattr(L, "ALEXNET_SHA256_PREFIX", sha256_file(hub_file)[:8])
    assert "refused, nothing was run" in _fails(hub_file)
    assert not marker.exists()
