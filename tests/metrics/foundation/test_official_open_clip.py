"""clip / open-clip / rclip adapters end to end against open_clip itself: the same photos, the same seeded weights,
each side with its own preprocessing (ours: [0, 1] tensor -> bicubic resize -> CLIP mean/std; open_clip: its
``create_model_and_transforms`` PIL transform), distance 1 - cos of ``encode_image``. Offline, tiny ViT config.

Tolerances (``official_inputs``): at 224 x 224 (no resize) FLOAT_ROUNDING (measured: bitwise equal distances);
64 -> 224 (the sample dataset's size) and 448 -> 224 PIL_RESIZE, for open_clip resizes the uint8 PIL image and
we resize in float (measured: 0.23 and 0.07 of that tolerance). A wrong input range ([0, 255] or [-1, 1] fed
to our adapter) lands over 100 times past PIL_RESIZE: the ``wrong range`` cases assert at least CLEARLY times,
so the equality cannot hold by accident.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

open_clip = pytest.importorskip("open_clip")

from lipsim_bench.metrics.foundation import clip as C  # noqa: E402
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

Transform = Callable[[Image.Image], torch.Tensor]
NAME = "lipsim-test-official-vit-b32-quickgelu"
#: ViT-B/32's layout (224 input, patch 32, QuickGELU) at width 64 and 2 layers: the same code path, fast on a CPU.
CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}
Models = tuple[C.OpenClipMetric, torch.nn.Module, Transform]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """(our adapter, open_clip's model, open_clip's val transform): the same seeded weights, passed as a file
    through open_clip's own strict checkpoint loading into ours."""
    folder = tmp_path_factory.mktemp("open_clip_official")
    (folder / f"{NAME}.json").write_text(json.dumps(CONFIG))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    model, _, transform = open_clip.create_model_and_transforms(NAME)
    checkpoint = Path(folder) / "weights.pt"
    torch.save(model.state_dict(), checkpoint)
    ours = C.create_open_clip_metric(NAME, checkpoint=str(checkpoint)).eval()
    return ours, model.eval(), transform


def official_distance(model: torch.nn.Module, transform: Transform, a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """open_clip's documented use: transform(PIL) -> encode_image(normalize=True) -> 1 - dot product."""
    with torch.no_grad():
        e_a = model.encode_image(torch.stack([transform(img) for img in pil_images(a)]), normalize=True)
        e_b = model.encode_image(torch.stack([transform(img) for img in pil_images(b)]), normalize=True)
    return 1 - (e_a * e_b).sum(dim=1)


@pytest.mark.parametrize(("size", "tolerance"), [(224, FLOAT_ROUNDING), (64, PIL_RESIZE), (448, PIL_RESIZE)])
def test_distance_equals_open_clip(models: Models, size: int, tolerance: Tolerance) -> None:
    ours_metric, model, transform = models
    a, b = photo_pairs(size)
    with torch.no_grad():
        ours = ours_metric(unit(a), unit(b))
    theirs = official_distance(model, transform, a, b)
    ratio = tolerance.ratio(ours, theirs)
    print(f"size {size}: ours {ours.tolist()} theirs {theirs.tolist()} gap/tolerance {ratio:.3g}")
    assert ratio < 1


@pytest.mark.parametrize("size", [224, 64])
@pytest.mark.parametrize("wrong", sorted(WRONG_RANGES))
def test_wrong_range_differs_clearly(models: Models, size: int, wrong: str) -> None:
    """Our adapter fed a wrong range while open_clip gets the right images: far outside the tolerance."""
    ours_metric, model, transform = models
    a, b = photo_pairs(size)
    with torch.no_grad():
        ours = ours_metric(WRONG_RANGES[wrong](unit(a)), WRONG_RANGES[wrong](unit(b)))
    ratio = PIL_RESIZE.ratio(ours, official_distance(model, transform, a, b))
    print(f"size {size} wrong {wrong}: gap/resize tolerance {ratio:.3g}")
    assert ratio > CLEARLY
