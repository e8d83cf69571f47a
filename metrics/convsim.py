"""``convsim-tiny``: a small ordinary CNN metric trained on the sample set, the offline DreamSim stand-in.

Not Lipschitz-constrained (``lipschitz = None``): it shows what an unconstrained learned metric does
under attack (accurate, and fragile), and it is the teacher that ``lipsim-tiny`` is distilled from. Its training command
and scores are in ``metrics/weights/convsim-tiny.md``.

``convsim-tiny-noise`` is its twin trained with Gaussian noise on the reference (sigma 0.25), the
base model randomized smoothing needs; it ships but stays out of the default run, whose reference
table it would otherwise change (``metrics/weights/convsim-tiny-noise.md``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lipsim_bench.metrics.base import PerceptualMetric
from lipsim_bench.metrics.conventions import THIS_PROJECT, Conventions, resize_text
from lipsim_bench.metrics.registry import register_metric
from lipsim_bench.metrics.resize import resize_to
from lipsim_bench.metrics.weights import bundled_metric_options, load_bundled


class ConvSim(PerceptualMetric):
    """4 stride-2 3x3 convolutions (64/128/128/128) with ReLU, the mean over positions, then a linear map to a
    128-d embedding.

    ``pool=False`` flattens the last 4x4 map instead (the first bundled convsim-tiny's head, 83.67 natural):
    the mean makes the embedding nearly invariant to the small shifts that make the sample set's positives,
    which, with 80 epochs and colour jitter, took natural to 96.67 (metrics/weights/convsim-tiny.md).
    """

    input_size = 64
    embed_dim = 128

    def __init__(self, widths: tuple[int, ...] = (64, 128, 128, 128), embed_dim: int = 128, pool: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        side = 1 if pool else self.input_size // 2 ** len(widths)
        self.head = nn.Linear(channels * side * side, embed_dim)
        self.embed_dim, self.pool = embed_dim, pool

    def embed(self, x: Tensor) -> Tensor:
        # channels-last: PyTorch's CPU convolutions take their faster path (1.35x for an attack step at batch 100,
        # measured side by side on 2 cores); the embedding moves by ~1e-7, so the adapter's source hash keys it
        x = (resize_to(x, self.input_size) - 0.5).contiguous(memory_format=torch.channels_last)
        features = self.features(x)
        return self.head(features.mean(dim=(2, 3)) if self.pool else features.flatten(1))


#: Both bundled ConvSims: ``embed`` above (resize_to, then x - 0.5), default distance 1 - cos.
CONVENTIONS = Conventions(
    input="x - 0.5",
    resize=resize_text(ConvSim.input_size, "bilinear", antialias=False),
    distance=f"1 - cos of the {ConvSim.embed_dim}-d embedding",
    mirrors=THIS_PROJECT,
)


@register_metric(
    "convsim-tiny",
    description="small CNN trained on the sample set with the hinge loss (no Lipschitz bound)",
    **bundled_metric_options("convsim-tiny"),
    conventions=CONVENTIONS,
)
def convsim_tiny() -> ConvSim:
    return load_bundled(ConvSim(), "convsim-tiny")


@register_metric(
    "convsim-tiny-noise",
    description="convsim-tiny trained with N(0, 0.25^2) noise on the reference, for the smoothing evaluation (not in the default run)",
    **bundled_metric_options("convsim-tiny-noise", default_run=False),
    conventions=CONVENTIONS,
)
def convsim_tiny_noise() -> ConvSim:
    return load_bundled(ConvSim(), "convsim-tiny-noise")
