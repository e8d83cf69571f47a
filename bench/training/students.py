"""Trainable architectures by name for ``run_bench.py train`` (fresh, randomly initialised)."""

from __future__ import annotations

from metrics.convsim import ConvSim
from metrics.lipsim.metric import LipSim
from metrics.lipsim.network import list_presets
from bench.training.cli import register_student

register_student("convsim-tiny")(ConvSim)
for _preset in list_presets():
    register_student(f"lipsim-{_preset}")(lambda preset=_preset: LipSim(preset))
