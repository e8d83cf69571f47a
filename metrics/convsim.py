"""``convsim-tiny``: a small ordinary CNN metric trained on the sample set, the offline DreamSim stand-in.

Not Lipschitz-constrained (``lipschitz = None``): it shows what an unconstrained learned metric does
under attack, and it is the teacher that ``lipsim-tiny`` is distilled from. Its training command
and scores are in ``metrics/weights/convsim-tiny.md``.

``convsim-tiny-noise`` is its twin trained with Gaussian noise on the reference (sigma 0.25), the
base model randomized smoothing needs; it ships but stays out of the default run, whose reference
table it would otherwise change (``metrics/weights/convsim-tiny-noise.md``).
"""

from __future__ import annotations

from torch import Tensor, nn

from metrics.base import PerceptualMetric
from metrics.registry import register_metric
from metrics.resize import resize_to
from metrics.weights import bundled_metric_options, load_bundled


class ConvSim(PerceptualMetric):
    """4 stride-2 3x3 convolutions (64/128/128/128) with ReLU, then a linear map to a 128-d embedding."""

    input_size = 64
    embed_dim = 128

    def __init__(self, widths: tuple[int, ...] = (64, 128, 128, 128), embed_dim: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        side = self.input_size // 2 ** len(widths)
        self.head = nn.Linear(channels * side * side, embed_dim)
        self.embed_dim = embed_dim

    def embed(self, x: Tensor) -> Tensor:
        x = resize_to(x, self.input_size) - 0.5
        return self.head(self.features(x).flatten(1))


@register_metric(
    "convsim-tiny",
    description="small CNN trained on the sample set with the hinge loss (no Lipschitz bound)",
    **bundled_metric_options("convsim-tiny"),
)
def convsim_tiny() -> ConvSim:
    return load_bundled(ConvSim(), "convsim-tiny")


@register_metric(
    "convsim-tiny-noise",
    description="convsim-tiny trained with N(0, 0.25^2) noise on the reference, for the smoothing evaluation (not in the default run)",
    **bundled_metric_options("convsim-tiny-noise", default_run=False),
)
def convsim_tiny_noise() -> ConvSim:
    return load_bundled(ConvSim(), "convsim-tiny-noise")
