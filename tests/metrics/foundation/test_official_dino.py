"""dino adapter end to end against timm's ViT with the DINO preprocessing DreamSim uses: the same photos and the
same seeded weights (one timm model, deep-copied into our adapter), each side with its own preprocessing.

Official side: DreamSim's ``preprocess`` transform (torchvision ``Resize((224, 224), BICUBIC)`` of the PIL image,
``ToTensor``), then its ``_preprocess`` normalisation for ``dino_vitb16`` (ImageNet mean/std), then the feature:
``cls_prenorm`` = DreamSim's forward hook on the last block, token 0 (applied to timm's ViT); ``cls`` = timm's
forward (CLS after the final norm). Distance 1 - cos, as DreamSim's. Ours: [0, 1] tensors into ``DinoMetric``.

Tolerances (``official_inputs``): at 224 x 224 FLOAT_ROUNDING (measured: bitwise equal distances); 64 -> 224
and 448 -> 224 PIL_RESIZE, for PIL resizes uint8 where we resize in float (measured: 0.24 and 0.10 of it).
A wrong range fed to our adapter lands over 100 times past PIL_RESIZE; the ``wrong range`` cases assert at
least CLEARLY times.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

timm = pytest.importorskip("timm")
pytest.importorskip("dreamsim")

from dreamsim.config import dreamsim_args  # noqa: E402
from dreamsim.model import PerceptualModel  # noqa: E402
from torchvision import transforms  # noqa: E402

from lipsim_bench.metrics.foundation import dino as D  # noqa: E402
from tests.metrics.foundation.official_inputs import (  # noqa: E402
    CLEARLY,
    FLOAT_ROUNDING,
    PIL_RESIZE,
    WRONG_RANGES,
    Tolerance,
    photo_pairs,
    pil_images,
    unit,
)
from tests.metrics.foundation.test_dino import TINY, dreamsim_cls  # noqa: E402


@pytest.fixture(scope="module")
def official() -> torch.nn.Module:
    """timm's ``vit_base_patch16_224.dino`` code path at 224 x 224, 2 blocks of width 64, seeded weights."""
    torch.manual_seed(0)
    return timm.create_model(D.TIMM_NAME, pretrained=False, img_size=224, **TINY).eval()


def dreamsim_dino_transform() -> transforms.Compose:
    """The PIL -> tensor chain DreamSim's ``dreamsim()`` returns, plus its DINO normalisation."""
    size = dreamsim_args["img_size"]
    return transforms.Compose(
        [
            transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Normalize(
                PerceptualModel._get_mean(None, "dino_vitb16"), PerceptualModel._get_std(None, "dino_vitb16")
            ),
        ]
    )


def official_distance(model: torch.nn.Module, feature: str, a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    transform = dreamsim_dino_transform()

    def embed(pixels: np.ndarray) -> torch.Tensor:
        x = torch.stack([transform(img) for img in pil_images(pixels)])
        return dreamsim_cls(model, x) if feature == "cls_prenorm" else model(x)

    with torch.no_grad():
        return 1 - torch.nn.functional.cosine_similarity(embed(a), embed(b), dim=1)


@pytest.mark.parametrize("feature", D.FEATURES)
@pytest.mark.parametrize(("size", "tolerance"), [(224, FLOAT_ROUNDING), (64, PIL_RESIZE), (448, PIL_RESIZE)])
def test_distance_equals_timm_with_dreamsim_preprocessing(
    official: torch.nn.Module, feature: str, size: int, tolerance: Tolerance
) -> None:
    ours_metric = D.DinoMetric(copy.deepcopy(official), feature).eval()
    a, b = photo_pairs(size)
    with torch.no_grad():
        ours = ours_metric(unit(a), unit(b))
    theirs = official_distance(official, feature, a, b)
    ratio = tolerance.ratio(ours, theirs)
    print(f"{feature} size {size}: ours {ours.tolist()} theirs {theirs.tolist()} gap/tolerance {ratio:.3g}")
    assert ratio < 1


@pytest.mark.parametrize("feature", D.FEATURES)
@pytest.mark.parametrize("size", [224, 64])
@pytest.mark.parametrize("wrong", sorted(WRONG_RANGES))
def test_wrong_range_differs_clearly(official: torch.nn.Module, feature: str, size: int, wrong: str) -> None:
    ours_metric = D.DinoMetric(copy.deepcopy(official), feature).eval()
    a, b = photo_pairs(size)
    with torch.no_grad():
        ours = ours_metric(WRONG_RANGES[wrong](unit(a)), WRONG_RANGES[wrong](unit(b)))
    ratio = PIL_RESIZE.ratio(ours, official_distance(official, feature, a, b))
    print(f"{feature} size {size} wrong {wrong}: gap/resize tolerance {ratio:.3g}")
    assert ratio > CLEARLY
