"""Trainable architectures by name for ``run_bench.py train`` (fresh, randomly initialised).

Candidates for a stronger bundled CNN (issue 14) besides ``convsim-tiny`` itself:

* ``convsim-deep5``: a fifth stride-2 layer, so the head sees a 2x2 map (it scored 82.33 natural, below
  convsim-tiny; kept to rerun that finding);
* ``convsim-wide``: widths 64/128/256/256;
* ``convsim-pool``: convsim-tiny's convolutions, then a mean over positions before the linear head, so a
  shifted view (the sample set's positives) moves the embedding less.
"""

from __future__ import annotations

from torch import Tensor, nn

from metrics.convsim import ConvSim
from metrics.lipsim.metric import LipSim
from metrics.lipsim.network import list_presets
from metrics.resize import resize_to
from bench.training.cli import register_student


class PooledConvSim(ConvSim):
    """ConvSim whose head sees the mean of the last feature map over positions (translation invariant)."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 128, 128), embed_dim: int = 128) -> None:
        super().__init__(widths, embed_dim)
        self.head = nn.Linear(widths[-1], embed_dim)

    def embed(self, x: Tensor) -> Tensor:
        x = resize_to(x, self.input_size) - 0.5
        return self.head(self.features(x).mean(dim=(2, 3)))


register_student("convsim-tiny")(ConvSim)
register_student("convsim-deep5")(lambda: ConvSim(widths=(64, 128, 128, 128, 256)))
register_student("convsim-wide")(lambda: ConvSim(widths=(64, 128, 256, 256)))
register_student("convsim-pool")(PooledConvSim)
register_student("convsim-pool-wide")(lambda: PooledConvSim(widths=(64, 128, 256, 256)))
for _preset in list_presets():
    register_student(f"lipsim-{_preset}")(lambda preset=_preset: LipSim(preset))
