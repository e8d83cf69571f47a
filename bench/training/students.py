"""Trainable architectures by name for ``run_bench.py train`` (fresh, randomly initialised).

``convsim-deep5`` and ``convsim-deep6`` are candidate stronger CNNs (issue 14): convsim-tiny's class with a
fifth (sixth) stride-2 layer, so the head sees a 2x2 (1x1) map and a shifted view moves fewer cells.
"""

from __future__ import annotations

from metrics.convsim import ConvSim
from metrics.lipsim.metric import LipSim
from metrics.lipsim.network import list_presets
from bench.training.cli import register_student

register_student("convsim-tiny")(ConvSim)
register_student("convsim-deep5")(lambda: ConvSim(widths=(64, 128, 128, 128, 256)))
register_student("convsim-deep6")(lambda: ConvSim(widths=(64, 128, 128, 256, 256, 256)))
for _preset in list_presets():
    register_student(f"lipsim-{_preset}")(lambda preset=_preset: LipSim(preset))
