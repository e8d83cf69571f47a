"""lpips adapter end to end against the ``lpips`` package: the same photos and the same weights (the wheel's
linear heads on both sides; one seeded random AlexNet file that torchvision, lpips and our factory all load
from a torch hub folder), each side with its own input convention:

* ours: [0, 1] tensors (it maps them to [-1, 1] inside);
* lpips, its documented use: ``lpips.im2tensor(uint8 image)`` ([-1, 1]) into ``lpips.LPIPS(net='alex', version='0.1')``;
  and its other entry, [0, 1] tensors with ``normalize=True``.

No resize on either side (LPIPS runs at the data's size), so the only gap is float rounding (the sums run in
another order): tolerance FLOAT_ROUNDING (``official_inputs``), measured 0.02 of it. A wrong range (ours fed
[0, 255] or [-1, 1]; or lpips given [0, 1] without ``normalize=True``) moves the distances by 55% or more:
the ``wrong range`` cases assert it lands at least CLEARLY times past even the (looser) PIL_RESIZE tolerance.

torchmetrics' LPIPS (``LearnedPerceptualImagePatchSimilarity(net_type='alex', normalize=True)``, its own copy of
the network and of the heads, the same hub file for the trunk) is compared the same way where torchmetrics is
installed (it is no dependency of ours: those tests skip otherwise).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

lpips = pytest.importorskip("lpips")

from lipsim_bench.io import sha256_file  # noqa: E402
from lipsim_bench.metrics import PerceptualMetric, get_metric_spec  # noqa: E402
from lipsim_bench.metrics.foundation import lpips as L  # noqa: E402
from lipsim_bench.metrics.foundation import weights as W  # noqa: E402
from tests.metrics.foundation.official_inputs import (  # noqa: E402
    CLEARLY,
    FLOAT_ROUNDING,
    PIL_RESIZE,
    WRONG_RANGES,
    photo_pairs,
    unit,
    write_random_alexnet,
)

SIZES = [64, 224]
Models = tuple[PerceptualMetric, torch.nn.Module]


@pytest.fixture(scope="module")
def alexnet_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """<weights dir>/torch/hub holding a seeded random AlexNet under torchvision's file name; empty TORCH_HOME."""
    root = tmp_path_factory.mktemp("lpips_official")
    hub = root / "weights" / "torch" / "hub"
    path = write_random_alexnet(hub / "checkpoints", L.ALEXNET_FILE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(W.ENV_WEIGHTS_DIR, str(root / "weights"))
        patch.setenv("TORCH_HOME", str(root / "torch_home"))
        patch.setattr(L, "ALEXNET_SHA256_PREFIX", sha256_file(path)[:8])  # a stand-in file: pin its own hash
        yield hub


@pytest.fixture(scope="module")
def models(alexnet_hub: Path) -> Models:
    """(our registered ``lpips``, the official ``lpips.LPIPS(net='alex', version='0.1')``): both load the hub file."""
    ours = get_metric_spec("lpips").factory().eval()
    with W.torch_hub_dir(alexnet_hub), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lpips calls torchvision's deprecated pretrained=True
        official = lpips.LPIPS(net="alex", version="0.1", verbose=False).eval()
    return ours, official


def official_im2tensor(official: torch.nn.Module, a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """lpips' README use: im2tensor(uint8 HxWx3) -> [-1, 1] tensors -> LPIPS."""
    with torch.no_grad():
        return torch.cat([official(lpips.im2tensor(x), lpips.im2tensor(y)).flatten() for x, y in zip(a, b)])


@pytest.mark.parametrize("size", SIZES)
def test_distance_equals_lpips(models: Models, size: int) -> None:
    ours_metric, official = models
    a, b = photo_pairs(size)
    with torch.no_grad():
        ours = ours_metric(unit(a), unit(b))
        normalized = official(unit(a), unit(b), normalize=True).flatten()
    theirs = official_im2tensor(official, a, b)
    ratios = FLOAT_ROUNDING.ratio(ours, theirs), FLOAT_ROUNDING.ratio(ours, normalized)
    print(f"size {size}: ours {ours.tolist()} theirs {theirs.tolist()} gap/tolerance {ratios}")
    assert max(ratios) < 1


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("wrong", [*sorted(WRONG_RANGES), "lpips without normalize=True"])
def test_wrong_range_differs_clearly(models: Models, size: int, wrong: str) -> None:
    """One side fed a wrong range while the other gets the right images: far outside the tolerance."""
    ours_metric, official = models
    a, b = photo_pairs(size)
    x_a, x_b = unit(a), unit(b)
    with torch.no_grad():
        if wrong in WRONG_RANGES:
            ours, theirs = (
                ours_metric(WRONG_RANGES[wrong](x_a), WRONG_RANGES[wrong](x_b)),
                official_im2tensor(official, a, b),
            )
        else:
            ours, theirs = ours_metric(x_a, x_b), official(x_a, x_b).flatten()  # lpips reads [0, 1] as [-1, 1]
    ratio = PIL_RESIZE.ratio(ours, theirs)
    print(f"size {size} wrong {wrong}: gap/resize tolerance {ratio:.3g}")
    assert ratio > CLEARLY


@pytest.fixture(scope="module")
def torchmetrics_lpips(alexnet_hub: Path) -> torch.nn.Module:
    lpip = pytest.importorskip("torchmetrics.image.lpip")
    with W.torch_hub_dir(alexnet_hub):
        return lpip.LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True, reduction="none").eval()


def torchmetrics_distance(metric: torch.nn.Module, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
    """Per-pair values of the torchmetrics metric ([0, 1] inputs, normalize=True), state reset after."""
    with torch.no_grad():
        values = metric(x_a, x_b).flatten()
    metric.reset()
    return values


@pytest.mark.parametrize("size", SIZES)
def test_distance_equals_torchmetrics(models: Models, torchmetrics_lpips: torch.nn.Module, size: int) -> None:
    ours_metric, _ = models
    a, b = photo_pairs(size)
    with torch.no_grad():
        ours = ours_metric(unit(a), unit(b))
    theirs = torchmetrics_distance(torchmetrics_lpips, unit(a), unit(b))
    ratio = FLOAT_ROUNDING.ratio(ours, theirs)
    print(f"size {size}: ours {ours.tolist()} torchmetrics {theirs.tolist()} gap/tolerance {ratio:.3g}")
    assert ratio < 1


@pytest.mark.parametrize("wrong", sorted(WRONG_RANGES))
def test_wrong_range_differs_clearly_from_torchmetrics(
    models: Models, torchmetrics_lpips: torch.nn.Module, wrong: str
) -> None:
    ours_metric, _ = models
    a, b = photo_pairs(64)
    with torch.no_grad():
        ours = ours_metric(WRONG_RANGES[wrong](unit(a)), WRONG_RANGES[wrong](unit(b)))
    ratio = PIL_RESIZE.ratio(ours, torchmetrics_distance(torchmetrics_lpips, unit(a), unit(b)))
    print(f"wrong {wrong}: gap/resize tolerance {ratio:.3g}")
    assert ratio > CLEARLY
