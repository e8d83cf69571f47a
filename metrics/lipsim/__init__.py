"""LipSim: 1-Lipschitz SLL feature extractors, their presets and sound Lipschitz bounds."""

from lipsim_bench.metrics.lipsim.layers import (
    FirstK,
    Flatten,
    PadChannels,
    PixelUnshuffle,
    Shift,
    SLLConv,
    SLLDense,
    SumPool,
    safe_inv,
    set_cache_enabled,
)
from lipsim_bench.metrics.lipsim.lipschitz import (
    iter_chain,
    jacobian_norm_lower_bound,
    layer_bounds,
    layer_lipschitz_bound,
    network_lipschitz_bound,
    sll_bound,
)
from lipsim_bench.metrics.lipsim.network import (
    ConvStage,
    LipSimConfig,
    LipSimNetwork,
    create_lipsim_network,
    get_preset,
    list_presets,
    register_preset,
)

__all__ = [
    "ConvStage",
    "FirstK",
    "Flatten",
    "LipSimConfig",
    "LipSimNetwork",
    "PadChannels",
    "PixelUnshuffle",
    "SLLConv",
    "SLLDense",
    "Shift",
    "SumPool",
    "create_lipsim_network",
    "get_preset",
    "iter_chain",
    "jacobian_norm_lower_bound",
    "layer_bounds",
    "layer_lipschitz_bound",
    "list_presets",
    "network_lipschitz_bound",
    "register_preset",
    "safe_inv",
    "set_cache_enabled",
    "sll_bound",
]
