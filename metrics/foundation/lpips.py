"""``lpips``: LPIPS v0.1 with the AlexNet trunk (Zhang et al. 2018), through the ``lpips`` package.

LPIPS is a squared distance between packed vectors (:mod:`lipsim_bench.metrics.lpips_packing`), with
f_l the AlexNet features at the 5 ReLU taps. So :meth:`LPIPSMetric.embed`
returns that single packed vector and :meth:`LPIPSMetric.distance` is its squared Euclidean distance:
``distance(embed(a), embed(b))`` equals ``lpips.LPIPS(net='alex')(2a - 1, 2b - 1)`` (up to float
rounding: the sums run in another order). ``distance_kind = "l2"``: a monotone function of the l2
distance, so 2AFC decisions are those of the l2 distance between packed embeddings.

Input: [0, 1] -> [-1, 1] (LPIPS's convention), then LPIPS's own ScalingLayer. No resize: LPIPS is
resolution-agnostic and is evaluated at the data's size (64 x 64 on BAPPS, 224 x 224 on NIGHT).
One deliberate difference from ``normalize_tensor``: the channel norm's gradient is 0 rather than NaN at a
position where every channel is 0 (:func:`~lipsim_bench.metrics.lpips_packing.unit_channels`).

Weights: the linear heads ship inside the ``lpips`` wheel; the AlexNet trunk is torchvision's
ImageNet AlexNet (``alexnet-owt-7be5be79.pth``), which torchvision downloads into torch.hub's
``checkpoints`` folder. We find that file on disk and load it ourselves (never a download).
"""

from __future__ import annotations

import re
import warnings

import torch
from torch import Tensor

from lipsim_bench.extras import require
from lipsim_bench.metrics.base import PerceptualMetric
from lipsim_bench.metrics.conventions import NO_RESIZE, Conventions
from lipsim_bench.metrics.errors import MetricError, WeightsUnavailableError
from lipsim_bench.metrics.foundation import weights as W
from lipsim_bench.metrics.lpips_packing import check_heads, pack_features, squared_l2
from lipsim_bench.metrics.registry import register_metric
from lipsim_bench.metrics.weightfiles import WeightsFileError, check_sha256, torch_load

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision AlexNet_Weights.IMAGENET1K_V1
#: torchvision names its files after the start of their sha256 (and checks it, but only on download).
ALEXNET_SHA256_PREFIX = "7be5be79"


class LPIPSMetric(PerceptualMetric):
    """LPIPS packed into one vector per image; distance = squared l2 = the LPIPS value."""

    distance_kind = "l2"

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        if not getattr(model, "lpips", False) or model.version != "0.1":
            raise MetricError("LPIPSMetric needs an lpips.LPIPS(lpips=True, version='0.1') model")
        self.model = model  # lpips.LPIPS: scaling_layer, net (trunk), lins (linear heads)
        check_heads([lin.model[-1].weight for lin in self.model.lins], "LPIPS")

    def embed(self, x: Tensor) -> Tensor:
        features = self.model.net.forward(self.model.scaling_layer(2 * x - 1))
        return pack_features(features, [lin.model[-1].weight for lin in self.model.lins])

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        return squared_l2(e_a, e_b)


def alexnet_state_for_lpips(state: dict[str, Tensor], trunk: torch.nn.Module) -> dict[str, Tensor]:
    """torchvision AlexNet keys (``features.<i>.*``) -> lpips' trunk keys (``slice<k>.<i>.*``)."""
    mapped = {}
    for key in trunk.state_dict():
        match = re.fullmatch(r"slice\d+\.(\d+)\.(.+)", key)
        if match is None:
            raise MetricError(f"unexpected LPIPS trunk parameter {key!r}")
        mapped[key] = state[f"features.{match.group(1)}.{match.group(2)}"]
    return mapped


HOW_TO_GET = W.how_to_get(
    "lpips",
    f"torchvision.models.alexnet(weights='IMAGENET1K_V1') -> torch hub checkpoints/{ALEXNET_FILE}; the LPIPS heads ship with the lpips package",
)


@register_metric(
    "lpips",
    description="LPIPS v0.1 AlexNet (learned linear heads), packed so that squared l2 = LPIPS",
    weights=f"lpips package heads (bundled in the wheel) + torchvision AlexNet {ALEXNET_FILE} (torch hub cache)",
    available=lambda: W.find_torch_checkpoint(ALEXNET_FILE) is not None,
    fingerprint=lambda: W.cache_file_fingerprint(W.find_torch_checkpoint(ALEXNET_FILE)),
    how_to_get=HOW_TO_GET,
    fetch=lambda: _fetch(),
    requires=("lpips",),
    conventions=Conventions(
        input="[-1, 1] (2x - 1), then LPIPS's ScalingLayer",
        resize=NO_RESIZE,
        distance="squared l2 of packed unit-normalised, head-weighted AlexNet features = the LPIPS value",
        mirrors="lpips 0.1.4: lpips.LPIPS(net='alex', version='0.1')",
    ),
)
def lpips_alex(pretrained: bool = True) -> LPIPSMetric:
    """LPIPS AlexNet; ``pretrained=False`` keeps the shipped heads but a random trunk (offline tests)."""
    lpips = require("lpips", "the LPIPS metric")

    # pnet_rand=True: build the trunk without torchvision's download; the heads (pretrained=True) come from the wheel.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*(pretrained|weights).*deprecated", category=UserWarning
        )  # lpips calls tv.alexnet(pretrained=...)
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    if pretrained:
        path = W.find_torch_checkpoint(ALEXNET_FILE)
        if path is None:
            raise WeightsUnavailableError(f"AlexNet weights ({ALEXNET_FILE}) are not on this machine; {HOW_TO_GET}")
        fix = "delete it and run `python run_bench.py fetch lpips` to download it again"
        check_sha256(path, ALEXNET_SHA256_PREFIX, fix, prefix=True)
        state = torch_load(path, fix)
        if not isinstance(state, dict):
            raise WeightsFileError(f"{path} holds no state dict; {fix}")
        model.net.load_state_dict(alexnet_state_for_lpips(state, model.net), strict=True)
    return LPIPSMetric(model.eval())


def _fetch() -> None:
    from torchvision.models import AlexNet_Weights

    with W.torch_hub_dir(W.torch_hubs()[0]):
        AlexNet_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
