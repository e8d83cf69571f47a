"""LipSim feature extractors: 1-Lipschitz networks built from a named preset.

``small`` is the paper's network (SaraGhazanfari/lipsim: ``L2LipschitzNetwork`` in
``lipsim/core/models/l2_lip/model.py``, sizes from ``set_config`` in ``lipsim/main.py``: depth 20,
num_channels 45, depth_linear 7, n_features 1024, conv_size 5, 1792 outputs for the DreamSim ensemble).
Its submodules mirror the official ones so that official state-dict keys map one-to-one:

    official (after stripping ``module.model.``)   here
    ``convs.{i}.kernel|bias|q``, i = 0..19         ``convs.{i}.kernel|bias|q``   (20 x SLLConv, then 2 x SumPool(4))
    ``linear.{j}.weight|bias|q``, j = 1..7         ``linear.{j}.weight|bias|q``  (Flatten, then 7 x SLLDense)
    ``base.1.*`` / ``base.2.*``                    duplicates of ``convs.*`` / ``linear.*`` (official ``base`` is
                                                   a Sequential of the same modules): drop after checking equality

The network returns the raw embedding phi(x); normalisation / ball projection belongs to the metric.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor, nn

from lipsim_bench.metrics.lipsim.layers import (
    FirstK,
    Flatten,
    PadChannels,
    PixelUnshuffle,
    Shift,
    SLLConv,
    SLLDense,
    SumPool,
)

__all__ = [
    "ConvStage",
    "LipSimConfig",
    "LipSimNetwork",
    "create_lipsim_network",
    "get_preset",
    "list_presets",
    "register_preset",
]


@dataclass(frozen=True)
class ConvStage:
    """``depth`` SLLConv layers at ``channels`` channels (zero-padded up to it), then the given pools."""

    channels: int
    depth: int
    inner: int
    pools: tuple[int, ...] = ()


@dataclass(frozen=True)
class LipSimConfig:
    """Architecture of a LipSim network; every piece is 1-Lipschitz, so the whole network is."""

    name: str
    input_size: int
    stages: tuple[ConvStage, ...]
    dense_depth: int
    dense_inner: int
    embed_dim: int
    in_channels: int = 3
    shift: float = 0.0
    unshuffle: int = 1
    kernel_size: int = 3
    description: str = ""

    @property
    def final_spatial(self) -> int:
        """Spatial size after the stem and every pool."""
        size = self.input_size // self.unshuffle
        for stage in self.stages:
            for k in stage.pools:
                size //= k
        return size

    @property
    def flat_features(self) -> int:
        """Input width of the dense SLL layers."""
        return self.stages[-1].channels * self.final_spatial**2

    def validate(self) -> None:
        """Reject configurations that would silently crop pixels, drop channels or fail at forward time."""
        if not self.stages:
            raise ValueError(f"{self.name}: at least one conv stage is needed")
        size = self.input_size
        if size % self.unshuffle:
            raise ValueError(f"{self.name}: input {size} not divisible by unshuffle {self.unshuffle}")
        size //= self.unshuffle
        channels = self.in_channels * self.unshuffle**2
        for stage in self.stages:
            if stage.channels < channels:
                raise ValueError(f"{self.name}: stage channels {stage.channels} < incoming {channels}")
            channels = stage.channels
            for k in stage.pools:
                if size % k:
                    raise ValueError(f"{self.name}: spatial size {size} not divisible by pool {k}")
                size //= k
        if self.embed_dim > self.flat_features:
            raise ValueError(f"{self.name}: embed_dim {self.embed_dim} > flat features {self.flat_features}")


_PRESETS: dict[str, LipSimConfig] = {}


def register_preset(config: LipSimConfig) -> LipSimConfig:
    """Add a preset (validated); names are unique."""
    config.validate()
    if config.name in _PRESETS and _PRESETS[config.name] != config:
        raise ValueError(f"preset {config.name!r} is already registered with a different config")
    _PRESETS[config.name] = config
    return config


def get_preset(name: str) -> LipSimConfig:
    """The config registered under ``name``."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown LipSim preset {name!r}; known: {', '.join(list_presets())}") from None


def list_presets() -> list[str]:
    """Names of the registered presets, sorted."""
    return sorted(_PRESETS)


register_preset(
    LipSimConfig(
        name="small",
        input_size=224,
        stages=(ConvStage(channels=45, depth=20, inner=5, pools=(4, 4)),),
        dense_depth=7,
        dense_inner=1024,
        embed_dim=1792,
        description="the paper's LipSim network (official 'small'): 224x224 input, 1792-d embedding, 63.3M params",
    )
)

register_preset(
    LipSimConfig(
        name="tiny",
        input_size=64,
        stages=(
            ConvStage(channels=16, depth=3, inner=16, pools=(2,)),
            ConvStage(channels=32, depth=3, inner=32, pools=(2,)),
            ConvStage(channels=64, depth=2, inner=64, pools=(2,)),
        ),
        dense_depth=2,
        dense_inner=1024,
        embed_dim=128,
        shift=-0.5,
        unshuffle=2,
        description="CPU-sized LipSim for 64x64 images: 128-d embedding, 2.2M params",
    )
)


class LipSimNetwork(nn.Module):
    """phi: [0, 1]^(3 x S x S) -> R^embed_dim, 1-Lipschitz in l2, as a chain stem -> convs -> linear -> last.

    :meth:`stages` is the exact chain the forward runs, so a Lipschitz checker can walk it.
    """

    def __init__(self, config: LipSimConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.input_size = config.input_size
        self.embed_dim = config.embed_dim

        stem: list[nn.Module] = []
        if config.shift:
            stem.append(Shift(config.shift))
        if config.unshuffle > 1:
            stem.append(PixelUnshuffle(config.unshuffle))
        stem.append(PadChannels(config.stages[0].channels))
        self.stem = nn.Sequential(*stem)

        size = config.input_size // config.unshuffle
        convs: list[nn.Module] = []
        for index, stage in enumerate(config.stages):
            if index:  # the first stage is padded in the stem, keeping official conv indices 0..depth-1
                convs.append(PadChannels(stage.channels))
            for _ in range(stage.depth):
                convs.append(SLLConv(stage.channels, stage.inner, config.kernel_size, spatial_size=size))
            for k in stage.pools:
                convs.append(SumPool(k))
                size //= k
        self.convs = nn.Sequential(*convs)

        linear: list[nn.Module] = [Flatten()]
        linear += [SLLDense(config.flat_features, config.dense_inner) for _ in range(config.dense_depth)]
        self.linear = nn.Sequential(*linear)
        self.last = FirstK(config.embed_dim)

    def stages(self) -> Iterator[nn.Module]:
        """The modules the forward applies, in order."""
        yield self.stem
        yield self.convs
        yield self.linear
        yield self.last

    def forward(self, x: Tensor) -> Tensor:
        """Raw embedding phi(x), shape (N, embed_dim); no normalisation."""
        for stage in self.stages():
            x = stage(x)
        return x

    def extra_repr(self) -> str:
        return f"preset={self.config.name!r}, input_size={self.input_size}, embed_dim={self.embed_dim}"


def create_lipsim_network(preset: str | LipSimConfig) -> LipSimNetwork:
    """Build a freshly initialised network from a preset name (see :func:`list_presets`) or a config."""
    config = get_preset(preset) if isinstance(preset, str) else preset
    return LipSimNetwork(config)
