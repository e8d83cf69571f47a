"""``stlpips-alex`` and ``stlpips-vgg``: shift-tolerant LPIPS (Ghildyal and Liu, ECCV 2022) with its published weights.

ST-LPIPS is LPIPS v0.1 on anti-aliased trunks (:mod:`.trunks`), with linear heads trained on BAPPS. Like
``lpips``, it is packed into one vector per image (:mod:`lipsim_bench.metrics.lpips_packing`), so that
``distance(embed(a), embed(b))`` equals ``stlpips.LPIPS(net=..., variant="shift_tolerant")(2a - 1, 2b - 1)``
up to float rounding (the equivalence test runs the package's own code on the same images).

Input: [0, 1] -> [-1, 1] (LPIPS's convention), then LPIPS's ScalingLayer (its shift and scale are in the
published file and loaded with it). No resize: the metric is evaluated at the data's size.

Weights: the ``stlpips-pytorch`` wheel (BSD-2-Clause, a dependency of this project) ships them as legacy
torch files, ``stlpips_pytorch/weights/vST0.0/{alex,vgg}_shift_tolerant.pth``. We find the file without
importing the package (its modules import IPython and torchsummary, which it does not declare), check its
pinned sha256, read it with ``weights_only=True`` and load every key strictly: the package's own loader
uses ``strict=False``, so a missing key would pass there silently.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor, nn

from lipsim_bench.metrics.base import PerceptualMetric
from lipsim_bench.metrics.conventions import NO_RESIZE, Conventions
from lipsim_bench.metrics.errors import WeightsUnavailableError
from lipsim_bench.metrics.lpips_packing import check_heads, pack_features, squared_l2
from lipsim_bench.metrics.registry import register_metric
from lipsim_bench.metrics.stlpips.trunks import TRUNKS
from lipsim_bench.metrics.weightfiles import WeightsFileError, check_sha256, torch_load

PACKAGE = "stlpips_pytorch"
PACKAGE_VERSION = "0.0.2"
#: sha256 of the published files in stlpips-pytorch 0.0.2 (checked before every load).
WEIGHTS_SHA256 = {
    "alex": "b356b382f96010f77d085ee8343ecd9fd322d0a56e8de2b2d0549fafcad8b9ee",
    "vgg": "44597da68f49c1837c100ff52299050f274d102eb102e5837178c79be6f0e250",
}
INSTALL = f"pip install --force-reinstall 'stlpips-pytorch=={PACKAGE_VERSION}'"


class STLPIPS(PerceptualMetric):
    """ST-LPIPS packed into one vector per image; distance = squared l2 = the ST-LPIPS value."""

    distance_kind = "l2"

    def __init__(self, net: str) -> None:
        super().__init__()
        self.net = net
        self.trunk = TRUNKS[net]()
        self.register_buffer("shift", torch.zeros(1, 3, 1, 1))
        self.register_buffer("scale", torch.ones(1, 3, 1, 1))
        self.heads = nn.ParameterList(
            nn.Parameter(torch.ones(1, c, 1, 1), requires_grad=False) for c in self.trunk.channels
        )

    def embed(self, x: Tensor) -> Tensor:
        # channels-last runs the trunk's convolutions (forward and input gradient) about 1.5x faster on CPU
        scaled = ((2 * x - 1 - self.shift) / self.scale).contiguous(memory_format=torch.channels_last)
        return pack_features(self.trunk(scaled), list(self.heads))

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        return squared_l2(e_a, e_b)

    def extra_repr(self) -> str:
        return f"net={self.net!r}"


def published_key(key: str) -> str:
    """Our state-dict key -> the published file's (``heads.2`` -> ``lin2.model.1.weight``, ``trunk.`` -> ``net.``)."""
    if key in ("shift", "scale"):
        return f"scaling_layer.{key}"
    if key.startswith("heads."):
        return f"lin{key.removeprefix('heads.')}.model.1.weight"
    return "net." + key.removeprefix("trunk.")


def wheel_weights(net: str) -> Path | None:
    """The published file inside the installed wheel (found without importing the package), or None."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"


def load_published(net: str) -> STLPIPS:
    """An :class:`STLPIPS` with the wheel's weights: pin checked, every key loaded, none left over."""
    path = wheel_weights(net)
    if path is None:
        raise WeightsUnavailableError(
            f"stlpips-{net} reads its weights from the package stlpips-pytorch, which is not installed: {INSTALL}"
        )
    fix = f"reinstall the package that ships it: {INSTALL}"
    if not path.is_file():
        raise WeightsFileError(f"{path} not found; {fix}")
    check_sha256(path, WEIGHTS_SHA256[net], fix)
    state = torch_load(path, fix)
    metric = STLPIPS(net)
    if not isinstance(state, dict):
        raise WeightsFileError(f"{path} holds no state dict; {fix}")
    ours = metric.state_dict()
    wanted = {published_key(k): k for k in ours}
    missing = sorted(set(wanted) - set(state))
    unexpected = sorted(set(state) - set(wanted))
    if missing or unexpected:
        raise WeightsFileError(
            f"{path} does not fit ST-LPIPS {net}: missing {missing[:3]}, unexpected {unexpected[:3]}; {fix}"
        )
    try:
        metric.load_state_dict({k: state[p] for p, k in wanted.items()}, strict=True)
    except RuntimeError as exc:
        raise WeightsFileError(
            f"{path} does not fit ST-LPIPS {net} ({str(exc).splitlines()[-1].strip()}); {fix}"
        ) from None
    check_heads(list(metric.heads), f"ST-LPIPS {net}")
    return metric.to(memory_format=torch.channels_last).eval()


def _options(net: str, *, default_run: bool) -> dict[str, object]:
    return {
        "weights": f"stlpips-pytorch {PACKAGE_VERSION} wheel: weights/vST0.0/{net}_shift_tolerant.pth",
        "bundled": True,
        "available": lambda: (wheel_weights(net) or Path("/nonexistent")).is_file(),
        "how_to_get": f"the file ships with the dependency stlpips-pytorch: {INSTALL}",
        "fingerprint": lambda: f"sha256:{WEIGHTS_SHA256[net]}",  # the pin every load checks
        "default_run": default_run,
        "conventions": Conventions(
            input="[-1, 1] (2x - 1), then LPIPS's ScalingLayer (shift/scale from the published file)",
            resize=NO_RESIZE,
            distance="squared l2 of packed unit-normalised, head-weighted features = the ST-LPIPS value",
            mirrors=f"stlpips-pytorch {PACKAGE_VERSION}: stlpips.LPIPS(net={net!r}, variant='shift_tolerant')",
        ),
    }


@register_metric(
    "stlpips-alex",
    description="ST-LPIPS AlexNet (shift-tolerant LPIPS, ECCV 2022; BAPPS-trained heads), packed: squared l2 = ST-LPIPS",
    **_options("alex", default_run=True),
)
def stlpips_alex() -> STLPIPS:
    """Shift-tolerant LPIPS on the anti-aliased AlexNet, published weights."""
    return load_published("alex")


@register_metric(
    "stlpips-vgg",
    description="ST-LPIPS VGG16 (shift-tolerant LPIPS, ECCV 2022; BAPPS-trained heads), packed: squared l2 = ST-LPIPS (not in the default run)",
    **_options("vgg", default_run=False),
)
def stlpips_vgg() -> STLPIPS:
    """Shift-tolerant LPIPS on the anti-aliased VGG16, published weights (about 4x alex's cost; run by name or --preset stlpips)."""
    return load_published("vgg")
