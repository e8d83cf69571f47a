"""Official LipSim checkpoints: key layout written from the official code's description, strict loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lipsim_bench.metrics import MetricError, WeightsUnavailableError, create_metric
from lipsim_bench.metrics.lipsim.checkpoint import download, load_official, sha256_file
from lipsim_bench.metrics.lipsim.network import create_lipsim_network


def official_small_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Keys and shapes of the official L2LipschitzNetwork (depth 20, 45 channels, conv inner 5, 7 linear of
    1024 on 45*14*14 inputs), as saved from DDP(wrapper(model)): ``convs``/``linear`` plus their ``base`` twins."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for i in range(20):
        for name, shape in (("kernel", (5, 45, 3, 3)), ("bias", (1, 5, 1, 1)), ("q", (5,))):
            state[f"convs.{i}.{name}"] = torch.randn(shape, generator=gen) * 0.1
    for j in range(1, 8):
        for name, shape in (("weight", (1024, 8820)), ("bias", (1, 1024)), ("q", (1024,))):
            state[f"linear.{j}.{name}"] = torch.randn(shape, generator=gen) * 0.01
    official = {f"module.model.{k}": v for k, v in state.items()}
    official.update({f"module.model.base.1.{k[6:]}": v for k, v in state.items() if k.startswith("convs.")})
    official.update({f"module.model.base.2.{k[7:]}": v for k, v in state.items() if k.startswith("linear.")})
    return official


@pytest.fixture(scope="module")
def official_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "lipsim_margin0.5.pth"
    torch.save({"epoch": 1, "model_state_dict": official_small_state_dict()}, path)
    return path


def test_official_layout_loads_strictly(official_file: Path) -> None:
    net = create_lipsim_network("small")
    digest = load_official(net, official_file)
    assert digest == sha256_file(official_file)
    expected = official_small_state_dict()
    assert torch.equal(net.convs[7].kernel, expected["module.model.convs.7.kernel"])
    assert torch.equal(net.linear[3].q, expected["module.model.linear.3.q"])


def test_pinned_sha_is_verified(official_file: Path) -> None:
    with pytest.raises(MetricError, match="not the pinned"):
        load_official(create_lipsim_network("small"), official_file, expected_sha256="0" * 64)


def test_missing_extra_and_inconsistent_keys_fail_loudly(tmp_path: Path) -> None:
    state = official_small_state_dict()
    broken = dict(state)
    del broken["module.model.linear.7.q"], broken["module.model.base.2.7.q"]
    torch.save(broken, tmp_path / "missing.pth")
    with pytest.raises(MetricError, match="missing \\['linear.7.q'\\]"):
        load_official(create_lipsim_network("small"), tmp_path / "missing.pth")
    extra = dict(state, **{"module.model.head.weight": torch.zeros(3)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(MetricError, match="unexpected \\['head.weight'\\]"):
        load_official(create_lipsim_network("small"), tmp_path / "extra.pth")
    twin = dict(state)
    twin["module.model.base.1.0.kernel"] = twin["module.model.base.1.0.kernel"] + 1
    torch.save(twin, tmp_path / "twin.pth")
    with pytest.raises(MetricError, match="base duplicate of convs.0.kernel differs"):
        load_official(create_lipsim_network("small"), tmp_path / "twin.pth")


def test_html_instead_of_checkpoint(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><html><body>Google Drive - Virus scan warning</body></html>")
    with pytest.raises(WeightsUnavailableError, match="returned a web page"):
        download(page.as_uri(), tmp_path / "w" / "lipsim.pth")
    assert not (tmp_path / "w" / "lipsim.pth").exists()
    with pytest.raises(MetricError, match="is a web page, not a checkpoint"):
        load_official(create_lipsim_network("small"), page)


def test_registered_metric_uses_the_weights_dir(
    official_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LIPSIM_BENCH_WEIGHTS", str(tmp_path / "empty"))
    with pytest.raises(WeightsUnavailableError, match="lipsim_margin0.5.pth"):
        create_metric("lipsim-margin0.5")
    monkeypatch.setenv("LIPSIM_BENCH_WEIGHTS", str(official_file.parent))
    metric = create_metric("lipsim")
    assert metric.weights_sha256 == sha256_file(official_file)
    assert metric.embed(torch.rand(1, 3, 224, 224)).shape == (1, 1792)
