"""Bundled metrics outside the default run (``default_run=False``): shipped and loadable, run only when named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import lipsim_bench.metrics.weights as bundled
from lipsim_bench.errors import BenchError
from lipsim_bench.metrics import (
    PerceptualMetric,
    create_metric,
    default_metrics,
    get_metric_spec,
    list_metrics,
    register_metric,
    unregister_metric,
)
from lipsim_bench.metrics.convsim import ConvSim
from tests.metrics.weightfile_cases import BREAKERS, assert_one_clean_line

NOISE = "convsim-tiny-noise"


def test_default_run_is_the_bundled_metrics_with_st_lpips() -> None:
    assert default_metrics() == ["pixel-l2", "convsim-tiny", "stlpips-alex", "lipsim-tiny", "lipsim-tiny-stlpips"]


def test_the_noise_twin_is_bundled_but_not_in_the_default_run() -> None:
    spec = get_metric_spec(NOISE)
    assert NOISE in list_metrics(bundled_only=True) and spec.is_available() and not spec.default_run
    assert get_metric_spec("convsim-tiny").default_run and spec.certifiable() is False
    metric = create_metric(NOISE)
    assert isinstance(metric, ConvSim) and metric.embed(torch.rand(2, 3, 64, 64)).shape == (2, 128)
    twin = create_metric("convsim-tiny")
    assert not torch.equal(metric.head.weight, twin.head.weight)  # its own weights, not a copy


@pytest.mark.parametrize("default_run", [True, False])
def test_default_run_flag_decides_membership(default_run: bool) -> None:
    """The same bundled toy joins the default run or not, by the flag alone."""

    @register_metric("test-bundled-toy", bundled=True, default_run=default_run)
    class Toy(PerceptualMetric):
        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)

    try:
        assert ("test-bundled-toy" in default_metrics()) is default_run
        assert "test-bundled-toy" in list_metrics(bundled_only=True)
    finally:
        unregister_metric("test-bundled-toy")


def test_bundled_options_carry_the_flag() -> None:
    assert bundled.bundled_metric_options("x")["default_run"] is True
    assert bundled.bundled_metric_options("x", default_run=False)["default_run"] is False


def test_noise_twin_file_matches_its_card_and_pin() -> None:
    path = bundled.bundled_weights(NOISE)
    card = (path.parent / f"{NOISE}.md").read_text(encoding="utf-8")
    assert f"`{path.name}`" in card and bundled.BUNDLED_SHA256[NOISE] in card
    assert bundled.file_fingerprint(path) == "sha256:" + bundled.BUNDLED_SHA256[NOISE]
    assert "--noise-sigma 0.25" in card
    script = (Path(__file__).resolve().parents[2] / "scripts" / "train_bundled_models.sh").read_text(encoding="utf-8")
    assert "--noise-sigma 0.25" in script and f'to_safetensors "$RUN/{NOISE}" {NOISE}' in script


@pytest.mark.parametrize("damage", sorted(BREAKERS))
def test_damaged_noise_twin_is_one_line(damage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = BREAKERS[damage](bundled.bundled_weights(NOISE), tmp_path / f"{NOISE}.safetensors")
    monkeypatch.setattr(bundled, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(BenchError) as info:
        create_metric(NOISE)
    assert_one_clean_line(str(info.value), copy)
    assert re.search(r"sha256 [0-9a-f]{64}, expected " + bundled.BUNDLED_SHA256[NOISE], str(info.value))
