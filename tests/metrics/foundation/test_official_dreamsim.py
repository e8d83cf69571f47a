"""dreamsim-dino end to end against the dreamsim package's own model, preprocessing and distance.

Both sides load ONE DreamSim cache folder written here with seeded random weights (``test_dreamsim``'s
writers: DINO ViT layout at width 64 behind a stand-in torch.hub repo, plus a random LoRA adapter):
the official side is ``model, preprocess = dreamsim(pretrained=True, cache_dir=..., dreamsim_type='dino_vitb16')``
called as its README does, ``model(preprocess(pil_a), preprocess(pil_b))`` (a PIL bicubic resize to 224 x 224,
``ToTensor``; the model normalises inside, 1 - cos); ours is the registered ``dreamsim-dino`` on [0, 1] tensors.

Tolerances (``official_inputs``): at 224 x 224 FLOAT_ROUNDING (measured: bitwise equal distances); 64 -> 224
and 448 -> 224 PIL_RESIZE (DreamSim resizes the uint8 PIL image, we resize in float; measured 0.27 and 0.32
of it). A wrong range fed to our adapter lands over 100 times past PIL_RESIZE (asserted: at least CLEARLY times).
The full-size CLIP / ensemble types share this code path (``test_dreamsim`` checks their loading): not repeated.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("dreamsim")
pytest.importorskip("peft")

from dreamsim import dreamsim  # noqa: E402

from lipsim_bench.metrics import PerceptualMetric, get_metric_spec  # noqa: E402
from lipsim_bench.metrics.foundation import weights as W  # noqa: E402
from lipsim_bench.metrics.foundation.dreamsim import _quiet  # noqa: E402
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
from tests.metrics.foundation.test_dreamsim import write_dino_hub, write_lora  # noqa: E402

#: DreamSim's (model, preprocess) as ``dreamsim()`` returns them.
Official = tuple[torch.nn.Module, Callable[[Image.Image], torch.Tensor]]
Models = tuple[PerceptualMetric, Official]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Models]:
    """(our registered dreamsim-dino, (DreamSim's model, DreamSim's preprocess)) from one seeded cache folder."""
    root = tmp_path_factory.mktemp("dreamsim_official")
    cache = root / "weights" / "dreamsim"
    cache.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as patch, _quiet():
        patch.setenv(W.ENV_WEIGHTS_DIR, str(root / "weights"))
        patch.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        torch.manual_seed(0)
        write_dino_hub(cache, width=64)
        write_lora(cache, "dino_vitb16")
        ours = get_metric_spec("dreamsim-dino").factory().eval()
        with W.preserve_torch_hub_dir(), contextlib.redirect_stdout(io.StringIO()):
            official = dreamsim(pretrained=True, device="cpu", cache_dir=str(cache), dreamsim_type="dino_vitb16")
        yield ours, official


def official_distance(official: Official, a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """DreamSim's README use, one pair at a time: model(preprocess(PIL), preprocess(PIL))."""
    model, preprocess = official
    with torch.no_grad():
        return torch.cat([model(preprocess(x), preprocess(y)).flatten() for x, y in zip(pil_images(a), pil_images(b))])


@pytest.mark.parametrize(("size", "tolerance"), [(224, FLOAT_ROUNDING), (64, PIL_RESIZE), (448, PIL_RESIZE)])
def test_distance_equals_dreamsim(models: Models, size: int, tolerance: Tolerance) -> None:
    ours_metric, official = models
    a, b = photo_pairs(size)
    with torch.no_grad():
        ours = ours_metric(unit(a), unit(b))
    theirs = official_distance(official, a, b)
    ratio = tolerance.ratio(ours, theirs)
    print(f"size {size}: ours {ours.tolist()} theirs {theirs.tolist()} gap/tolerance {ratio:.3g}")
    assert ratio < 1


@pytest.mark.parametrize("size", [224, 64])
@pytest.mark.parametrize("wrong", sorted(WRONG_RANGES))
def test_wrong_range_differs_clearly(models: Models, size: int, wrong: str) -> None:
    ours_metric, official = models
    a, b = photo_pairs(size)
    with torch.no_grad():
        ours = ours_metric(WRONG_RANGES[wrong](unit(a)), WRONG_RANGES[wrong](unit(b)))
    ratio = PIL_RESIZE.ratio(ours, official_distance(official, a, b))
    print(f"size {size} wrong {wrong}: gap/resize tolerance {ratio:.3g}")
    assert ratio > CLEARLY
