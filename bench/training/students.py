"""Trainable architectures by name for ``run_bench.py train`` (fresh, randomly initialised).

``convsim-tiny`` is the bundled CNN's architecture (mean-pooled head). The others were candidates for it
(issue 14; natural scores on the sample test split, trained on one GPU with 80 or 40 epochs, colour jitter):

* ``convsim-flat``: the first bundled head, the flattened 4x4 map (83.67 with its 12-epoch recipe; 89.67 with
  80 epochs and colour jitter);
* ``convsim-deep5``: a fifth stride-2 layer, a 2x2 map flattened (85.33, 40 epochs);
* ``convsim-wide``: widths 64/128/256/256, flattened (88.00, 40 epochs);
* ``convsim-pool-wide``: widths 64/128/256/256, mean-pooled (93.33, 40 epochs).
"""

from __future__ import annotations

from lipsim_bench.metrics.convsim import ConvSim
from lipsim_bench.metrics.lipsim.metric import LipSim
from lipsim_bench.metrics.lipsim.network import list_presets
from lipsim_bench.training.cli import register_student

register_student("convsim-tiny")(ConvSim)
register_student("convsim-flat")(lambda: ConvSim(pool=False))
register_student("convsim-deep5")(lambda: ConvSim(widths=(64, 128, 128, 128, 256), pool=False))
register_student("convsim-wide")(lambda: ConvSim(widths=(64, 128, 256, 256), pool=False))
register_student("convsim-pool-wide")(lambda: ConvSim(widths=(64, 128, 256, 256)))
for _preset in list_presets():
    register_student(f"lipsim-{_preset}")(lambda preset=_preset: LipSim(preset))
