"""Presets: architecture, parameter counts, shapes, official key layout, config validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lipsim_bench.metrics.lipsim import (
    ConvStage,
    FirstK,
    Flatten,
    LipSimConfig,
    LipSimNetwork,
    PadChannels,
    PixelUnshuffle,
    Shift,
    SLLConv,
    SLLDense,
    SumPool,
    create_lipsim_network,
    get_preset,
    list_presets,
    register_preset,
)


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def sll_param_count(config: LipSimConfig) -> int:
    """Independent count: conv = inner*C*k*k + 2*inner, dense = inner*features + 2*inner."""
    k2 = config.kernel_size**2
    conv = sum(s.depth * (s.inner * s.channels * k2 + 2 * s.inner) for s in config.stages)
    dense = config.dense_depth * (config.dense_inner * config.flat_features + 2 * config.dense_inner)
    return conv + dense


@pytest.fixture(scope="module")
def small_net() -> LipSimNetwork:
    torch.manual_seed(0)
    return create_lipsim_network("small").eval()


def test_presets_are_registered() -> None:
    assert {"small", "tiny"} <= set(list_presets())
    with pytest.raises(KeyError):
        create_lipsim_network("no-such-preset")


def test_small_is_the_papers_network(small_net: LipSimNetwork) -> None:
    assert small_net.input_size == 224 and small_net.embed_dim == 1792
    assert [type(m) for m in small_net.stem] == [PadChannels] and small_net.stem[0].out_channels == 45
    convs = list(small_net.convs)
    assert all(isinstance(m, SLLConv) for m in convs[:20]) and len(convs) == 22
    assert all((m.channels, m.inner, m.kernel_size, m.spatial_size) == (45, 5, 3, 224) for m in convs[:20])
    assert [(type(m), m.k) for m in convs[20:]] == [(SumPool, 4), (SumPool, 4)]
    linear = list(small_net.linear)
    assert isinstance(linear[0], Flatten) and len(linear) == 8
    assert all(isinstance(m, SLLDense) and (m.features, m.inner) == (45 * 14 * 14, 1024) for m in linear[1:])
    assert isinstance(small_net.last, FirstK) and small_net.last.k == 1792


def test_parameter_counts(small_net: LipSimNetwork) -> None:
    small = n_params(small_net)
    assert small == sll_param_count(get_preset("small")) == 20 * (5 * 45 * 9 + 10) + 7 * (1024 * 8820 + 2048)
    assert abs(small - 63.3e6) < 0.05e6  # "about 63.3M parameters"
    tiny = n_params(create_lipsim_network("tiny"))
    assert tiny == sll_param_count(get_preset("tiny"))
    assert abs(tiny - 2.2e6) < 0.05e6


def test_small_state_dict_matches_the_official_layout(small_net: LipSimNetwork) -> None:
    """Official keys (prefix ``module.model.`` stripped, ``base.*`` duplicates dropped) with their shapes."""
    official = {}
    for i in range(20):
        official |= {f"convs.{i}.kernel": (5, 45, 3, 3), f"convs.{i}.bias": (1, 5, 1, 1), f"convs.{i}.q": (5,)}
    for j in range(1, 8):
        official |= {f"linear.{j}.weight": (1024, 8820), f"linear.{j}.bias": (1, 1024), f"linear.{j}.q": (1024,)}
    assert {k: tuple(v.shape) for k, v in small_net.state_dict().items()} == official


def test_small_forward_shape(small_net: LipSimNetwork) -> None:
    with torch.no_grad():
        out = small_net(torch.rand(1, 3, 224, 224))
    assert out.shape == (1, 1792) and torch.isfinite(out).all()


def test_tiny_architecture_shapes_and_stem() -> None:
    torch.manual_seed(0)
    net = create_lipsim_network("tiny").eval()
    assert net.input_size == 64 and net.embed_dim == 128
    assert [type(m) for m in net.stem] == [Shift, PixelUnshuffle, PadChannels]
    x = torch.rand(3, 3, 64, 64)
    stem = net.stem(x)
    assert stem.shape == (3, 16, 32, 32)
    torch.testing.assert_close(stem[:, :12], nn.functional.pixel_unshuffle(x - 0.5, 2))
    assert not stem[:, 12:].any()
    seen: list[tuple[int, int]] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: seen.append((mod.spatial_size, args[0].shape[-1])))
        for m in net.modules()
        if isinstance(m, SLLConv)
    ]
    with torch.no_grad():
        out = net(x)
    for h in hooks:
        h.remove()
    assert out.shape == (3, 128)
    assert [size for size, _ in seen] == [32] * 3 + [16] * 3 + [8] * 2
    assert all(recorded == actual for recorded, actual in seen)  # the Lipschitz checker relies on it
    assert net.linear[1].features == 1024


def test_forward_returns_raw_unnormalised_embedding() -> None:
    torch.manual_seed(0)
    net = create_lipsim_network("tiny").eval()
    with torch.no_grad():
        norms = net(torch.rand(8, 3, 64, 64)).norm(dim=1)
    assert not torch.allclose(norms, torch.ones_like(norms))


def test_config_validation() -> None:
    base = dict(name="x", input_size=32, dense_depth=1, dense_inner=8, embed_dim=4)
    with pytest.raises(ValueError):  # 32 / 3 pools do not divide
        LipSimNetwork(LipSimConfig(stages=(ConvStage(8, 1, 4, pools=(3,)),), **base))
    with pytest.raises(ValueError):  # channels cannot shrink
        LipSimNetwork(LipSimConfig(stages=(ConvStage(2, 1, 4),), **base))
    with pytest.raises(ValueError):  # more outputs than features
        LipSimNetwork(LipSimConfig(stages=(ConvStage(4, 1, 4, pools=(16,)),), **{**base, "embed_dim": 17}))
    with pytest.raises(ValueError):  # a different config under an existing name
        register_preset(LipSimConfig(stages=(ConvStage(8, 1, 4),), **{**base, "name": "tiny"}))


def test_custom_config_builds_and_runs() -> None:
    config = LipSimConfig(
        name="custom-test",
        input_size=16,
        stages=(ConvStage(4, 1, 2, pools=(2,)), ConvStage(6, 1, 3, pools=(2,))),
        dense_depth=1,
        dense_inner=5,
        embed_dim=7,
    )
    net = create_lipsim_network(config)
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, 7)
    assert n_params(net) == sll_param_count(config)
