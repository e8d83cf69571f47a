"""Measured images/s of this machine (``benchmarks/profile_device.py``), for the dry run's times.

A metric the profile names is timed from its measured rates (forward images/s for clean passes,
forward + backward images/s for attack steps) instead of FLOPs over an assumed GPU throughput.
The file is ``results/device_profile.json`` (under ``$LIPSIM_BENCH_RESULTS``) or the one
``$LIPSIM_BENCH_DEVICE_PROFILE`` names (``none``, or 0/false/no/off: use no profile). A missing default file means
"not measured"; a named file that is missing, or any malformed file, is one line saying to rerun
the profiler.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lipsim_bench.errors import BenchError
from lipsim_bench.locations import results_root

PROFILE_ENV = "LIPSIM_BENCH_DEVICE_PROFILE"
#: What the variable may say to use no profile (case-insensitive); anything else is a file's path.
PROFILE_OFF = ("none", "0", "false", "no", "off")
PROFILE_NAME = "device_profile.json"
FORMAT = 1
RERUN = "rerun `python benchmarks/profile_device.py` on the GPU machine"


@dataclass(frozen=True)
class MeasuredRate:
    """One metric's measured throughput, in images per second."""

    forward: float
    forward_backward: float
    input_size: int

    def seconds(self, forward_images: float, forward_backward_images: float) -> float:
        return forward_images / self.forward + forward_backward_images / self.forward_backward


@dataclass(frozen=True)
class DeviceProfile:
    """What ``benchmarks/profile_device.py`` measured, and where and when."""

    path: Path
    device: str
    measured_at: str
    precision: str
    batch: int
    metrics: dict[str, MeasuredRate]

    def rate(self, metric: str, aliases: dict[str, str] | None = None) -> MeasuredRate | None:
        """The metric's rates, or those of the metric it shares an architecture with (``aliases``)."""
        return self.metrics.get(metric) or self.metrics.get((aliases or {}).get(metric, ""))

    def describe(self) -> str:
        return f"{self.device} ({self.path}, measured {self.measured_at}, {self.precision}, batch {self.batch})"


def profile_path() -> Path | None:
    """The profile file to read: the variable's, else the results folder's; None when switched off."""
    named = os.environ.get(PROFILE_ENV, "").strip()
    if named.lower() in PROFILE_OFF:
        return None
    return Path(named).expanduser() if named else results_root() / PROFILE_NAME


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} is {value!r}, not a positive number")
    return float(value)


def _rate(name: str, row: Any) -> MeasuredRate:
    if not isinstance(row, dict):
        raise ValueError(f"metric {name!r} is {type(row).__name__}, not an object")
    size = row.get("input_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"metric {name!r}: input_size is {size!r}, not a positive integer")
    return MeasuredRate(
        _positive(row.get("forward_images_per_s"), f"metric {name!r}: forward_images_per_s"),
        _positive(row.get("forward_backward_images_per_s"), f"metric {name!r}: forward_backward_images_per_s"),
        size,
    )


def parse_profile(path: Path, data: Any) -> DeviceProfile:
    """The profile in ``data`` (a parsed JSON document); ValueError naming the first bad field."""
    if not isinstance(data, dict):
        raise ValueError("the file is not a JSON object")
    if data.get("format") != FORMAT:
        raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT}")
    for key in ("device", "measured_at", "precision"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ValueError(f"{key} is missing or not a string")
    batch = data.get("batch")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch is {batch!r}, not a positive integer")
    metrics = data.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError("metrics is missing or empty")
    rates = {str(name): _rate(str(name), row) for name, row in metrics.items()}
    return DeviceProfile(path, data["device"], data["measured_at"], data["precision"], batch, rates)


def load_device_profile(path: Path | None = None) -> DeviceProfile | None:
    """The measured profile, or None when there is none; a malformed one is a :class:`BenchError`.

    ``path`` (or the variable) names a file that must exist; the default file may be absent.
    """
    named = path is not None or bool(os.environ.get(PROFILE_ENV, "").strip())
    path = path if path is not None else profile_path()
    if path is None:
        return None
    if not path.exists():
        if named:
            raise BenchError(
                f"device profile {path} does not exist; {RERUN} with --out {path}, set {PROFILE_ENV}=none "
                "for no profile, or unset it"
            )
        return None
    if not path.is_file():
        raise BenchError(f"device profile {path} is not a file; remove it and {RERUN}")
    try:
        return parse_profile(path, json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise BenchError(f"device profile {path} is malformed ({exc}); {RERUN}, or delete the file") from None
