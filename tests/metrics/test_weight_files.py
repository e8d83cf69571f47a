"""Bundled weights and every metric loader: a damaged, foreign or crafted file is one clear line, never a
silent change of the embeddings and never code run (issue 12)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

import lipsim_bench.metrics.weights as bundled
from lipsim_bench.errors import BenchError
from lipsim_bench.metrics import create_metric
from lipsim_bench.metrics.lipsim.checkpoint import load_official
from lipsim_bench.metrics.lipsim.network import create_lipsim_network
from tests.metrics.weightfile_cases import BREAKERS, assert_one_clean_line, evil_checkpoint

NAMES = ("convsim-tiny", "lipsim-tiny")


def test_the_crafted_pickle_really_runs_code_when_loaded_unsafely(tmp_path: Path) -> None:
    """The payload the other tests feed the loaders is live (so their 'nothing ran' checks mean something)."""
    marker = tmp_path / "ran"
    evil_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("name", NAMES)
def test_bundled_file_is_safetensors_and_matches_its_card(name: str) -> None:
    path = bundled.bundled_weights(name)
    assert path.suffix == ".safetensors" and path.is_file()
    card = (path.parent / f"{name}.md").read_text(encoding="utf-8")
    assert f"`{path.name}`" in card and bundled.BUNDLED_SHA256[name] in card
    assert not list(path.parent.glob("*.pt")), "the pickle-based .pt copies are gone"
    assert create_metric(name).embed(torch.rand(2, 3, 64, 64)).shape == (2, 128)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("damage", sorted(BREAKERS))
def test_damaged_bundled_file_is_one_line_with_hashes_and_fix(
    name: str, damage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = bundled.bundled_weights(name)
    copy = BREAKERS[damage](source, tmp_path / source.name)
    monkeypatch.setattr(bundled, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(BenchError) as info:
        create_metric(name)
    message = str(info.value)
    assert_one_clean_line(message, copy)
    assert re.search(r"sha256 [0-9a-f]{64}, expected " + bundled.BUNDLED_SHA256[name], message), message
    assert "reinstall" in message and f"{name}.md" in message


def test_bundled_pin_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crafted file in place of a bundled one is refused on its hash; nothing in it runs."""
    marker = tmp_path / "ran"
    evil_checkpoint(tmp_path / "convsim-tiny.safetensors", marker)
    monkeypatch.setattr(bundled, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(BenchError, match="sha256"):
        create_metric("convsim-tiny")
    assert not marker.exists()


# ---------------------------------------------------------------- official LipSim checkpoints


@pytest.fixture(scope="module")
def official_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small official-layout checkpoint (``module.model.`` keys) of the ``small`` network."""
    torch.manual_seed(0)
    state = {f"module.model.{k}": v for k, v in create_lipsim_network("small").state_dict().items()}
    path = tmp_path_factory.mktemp("official") / "lipsim_margin0.5.pth"
    torch.save({"epoch": 1, "model_state_dict": state}, path)
    return path


@pytest.mark.parametrize("damage", sorted(BREAKERS))
def test_damaged_official_checkpoint_is_one_line_with_fix(damage: str, official_file: Path, tmp_path: Path) -> None:
    bad = BREAKERS[damage](official_file, tmp_path / official_file.name)
    with pytest.raises(BenchError) as info:
        load_official(create_lipsim_network("small"), bad)
    assert_one_clean_line(str(info.value), bad)
    assert "fetch lipsim-margin0.5" in str(info.value)


def test_crafted_official_checkpoint_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = evil_checkpoint(tmp_path / "lipsim_pretrained.pth", marker)
    with pytest.raises(BenchError) as info:
        load_official(create_lipsim_network("small"), path)
    assert_one_clean_line(str(info.value), path)
    assert "fetch lipsim-pretrained" in str(info.value) and not marker.exists()


def test_pinned_official_checkpoint_mismatch_says_how_to_fix(official_file: Path) -> None:
    with pytest.raises(BenchError, match="not the pinned 0{64}; delete it and re-download it .*fetch lipsim-margin0.5"):
        load_official(create_lipsim_network("small"), official_file, expected_sha256="0" * 64)


def test_intact_official_checkpoint_still_loads(official_file: Path) -> None:
    network = create_lipsim_network("small")
    assert len(load_official(network, official_file)) == 64


def test_bundled_copy_is_untouched() -> None:
    """The tests above work on copies (a guard: a test that damaged the real file would break every run)."""
    for name in NAMES:
        assert bundled.file_fingerprint(bundled.bundled_weights(name)) == "sha256:" + bundled.BUNDLED_SHA256[name]
        assert shutil.which  # keeps the import used
