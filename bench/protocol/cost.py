"""GPU time estimates for benchmark units, from a committed table of per-image FLOPs.

``bench/protocol/cost_table.json`` (written by ``python benchmarks/flops.py``) holds, per metric, the FLOPs of
one image's ``embed`` at 3x224x224 (forward) and of ``distance(embed(x), e).sum().backward()`` to the
input pixels (forward + backward, parameters frozen, as in an attack step). A dry run reads the table
only: no model is built.

Each evaluation owns its cost model (``Evaluation.flops``; n = triplets, F = forward FLOPs,
B = forward + backward FLOPs per image): clean and certified ones ``3 n F``; an attack per eps
``n (3 F + a steps restarts B + F)`` with ``a`` the fraction of triplets still attacked after carried
flips and proven-robust triplets (:mod:`lipsim_bench.protocol.attack_work`; 1 = all of them, an upper bound:
early stopping drops fooled ones too); the direct attack ``n (steps B + 2 F)``.

Seconds = FLOPs / sustained throughput of a :class:`GpuProfile`, unless the metric was measured on
the machine (:mod:`lipsim_bench.protocol.device_profile`). FlopCounterMode counts matmul and convolution
FLOPs (2 x multiply-adds) only; elementwise work, data loading and Python overhead are folded into
the assumed utilisation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from lipsim_bench.attacks.base import ThreatModel
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import Evaluation, PassCost, get_evaluation
from lipsim_bench.evaluations.options import build_options, option_fields

COST_TABLE = Path(__file__).with_name("cost_table.json")

#: Registered metrics that share a tabled metric's architecture (same FLOPs, other weights).
ALIASES: dict[str, str] = {
    "lipsim-margin0.2": "lipsim",
    "lipsim-margin0.5": "lipsim",
    "lipsim-pretrained": "lipsim",
    "rclip-tecoa-convnext": "rclip",
    "rclip-fare-convnext": "rclip",
    "rclip-fare-vitb16": "rclip-tecoa-vitb16",
    "rclip-fare-vitb32": "rclip-tecoa-vitb32",
}


@dataclass(frozen=True)
class GpuProfile:
    """A GPU as one number: the FLOP rate a batched ViT-B forward/backward sustains on it.

    ``sustained_tflops`` is an assumption, not a measurement: the project runs in FP32 (PyTorch's
    default ``torch.backends.cuda.matmul.allow_tf32`` is False and nothing here turns it on, so the
    transformers' matmuls run on the FP32 CUDA cores, not the TF32 tensor cores), and we take 40% of
    the FP32 peak for batch-100 ViT-B passes: large SGEMMs reach 70-80% of peak, but layer norms,
    softmax, GELU, the attacks' projections and the host loop do not count as FLOPs yet take time.
    """

    name: str
    sustained_tflops: float  # assumed effective FP32 throughput (see the class docstring)


#: Peaks from NVIDIA's data sheets (dense, no sparsity): H100 SXM FP32 67 TFLOPS (TF32 tensor 495),
#: H200 the same compute as H100 SXM, A100 FP32 19.5 TFLOPS (TF32 tensor 156). Sustained = 40% of FP32.
GPU_PROFILES: dict[str, GpuProfile] = {
    "h100": GpuProfile("NVIDIA H100 SXM, FP32, 40% of the 67 TFLOPS peak", 0.4 * 67.0),
    "h200": GpuProfile("NVIDIA H200, FP32, 40% of the 67 TFLOPS peak", 0.4 * 67.0),
    "a100": GpuProfile("NVIDIA A100, FP32, 40% of the 19.5 TFLOPS peak", 0.4 * 19.5),
}
DEFAULT_GPU = GPU_PROFILES["h100"]


@cache
def _read_table(path: Path) -> dict[str, dict[str, float]]:
    return json.loads(path.read_text())["metrics"]


def load_cost_table(path: Path = COST_TABLE) -> dict[str, dict[str, float]]:
    """Per-metric FLOPs (``forward_gflops``, ``forward_backward_gflops``, ``params_m``) per image."""
    return {name: dict(row) for name, row in _read_table(path).items()}


def _row(metric: str) -> dict[str, float] | None:
    table = load_cost_table()
    return table.get(metric) or table.get(ALIASES.get(metric, ""))


def pass_cost(metric: str) -> PassCost | None:
    """FLOPs of one image's forward and forward + backward pass of ``metric`` (None: not tabled)."""
    row = _row(metric)
    return None if row is None else PassCost(row["forward_gflops"] * 1e9, row["forward_backward_gflops"] * 1e9)


def _flops(
    evaluation: Evaluation, cost: PassCost, n_triplets: int, threat: ThreatModel | None, attacked: float
) -> float:
    if attacked == 1.0:  # the whole unit: also for plugin evaluations whose flops() predates ``attacked``
        return evaluation.flops(cost, n_triplets, threat)
    return evaluation.flops(cost, n_triplets, threat, attacked=attacked)


def evaluation_flops(
    metric: str, evaluation: Evaluation, n_triplets: int, threat: ThreatModel | None = None, attacked: float = 1.0
) -> float | None:
    """FLOPs of one unit by the evaluation's own cost model; None for an untabled metric.

    ``attacked``: the fraction of triplets an attack unit still attacks (``bench/protocol/attack_work.py``).
    """
    cost = pass_cost(metric)
    return None if cost is None else _flops(evaluation, cost, n_triplets, threat, attacked)


def pass_counts(
    evaluation: Evaluation, n_triplets: int, threat: ThreatModel | None = None, attacked: float = 1.0
) -> tuple[float, float]:
    """Images through a forward pass and through a forward + backward pass in one unit.

    Read off the evaluation's cost model, which is linear in the two per-image costs: with a
    forward costing 1 and a backward 0 it counts forward passes, and the other way round.
    """
    return (
        _flops(evaluation, PassCost(1.0, 0.0), n_triplets, threat, attacked),
        _flops(evaluation, PassCost(0.0, 1.0), n_triplets, threat, attacked),
    )


def unit_flops(metric: str, evaluation: str, n_triplets: int, *, steps: int, restarts: int) -> float | None:
    """FLOPs of one unit of the named evaluation with ``steps`` and ``restarts`` where it has them."""
    try:
        cls = get_evaluation(evaluation)
    except BenchError as exc:
        raise ValueError(f"no cost model for evaluation {evaluation!r}: {exc}") from None
    fields = option_fields(cls.Options)
    values = {k: v for k, v in (("steps", steps), ("restarts", restarts)) if k in fields}
    return evaluation_flops(metric, cls(build_options(cls.Options, evaluation, values)), n_triplets)


def seconds(flops: float | None, gpu: GpuProfile = DEFAULT_GPU) -> float | None:
    return None if flops is None else flops / (gpu.sustained_tflops * 1e12)


def estimate_seconds(
    metric: str, evaluation: str, n_triplets: int, *, steps: int, restarts: int, gpu: GpuProfile = DEFAULT_GPU
) -> float | None:
    """Estimated GPU seconds of one unit; None when the metric is not in the table."""
    return seconds(unit_flops(metric, evaluation, n_triplets, steps=steps, restarts=restarts), gpu)


# --------------------------------------------------------------------------- counting (benchmarks/flops.py)


@contextmanager
def _countable_kernels() -> Iterator[None]:
    """Route attention through plain matmuls, so FlopCounterMode sees them.

    nn.MultiheadAttention's inference fast path and the fused CPU attention kernel are opaque to
    FlopCounterMode (a CLIP ViT-B/32 forward counts 5.9 GFLOPs with them, 8.8 without: the q/k/v
    projections and attention products go missing). The math path computes the same thing.
    """
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _counted(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def count_flops(metric: nn.Module, size: int) -> tuple[float, float]:
    """FLOPs of one ``size`` x ``size`` image: (``embed`` under no_grad, embed + backward to the pixels).

    A warm-up embed runs first, so one-off work (LipSim's eval-mode weight cache) is not counted:
    the benchmark embeds thousands of images with the same weights. Freeze the parameters first
    (``create_metric`` does), as attacks do: else the backward also counts the weight gradients.
    """
    x = torch.rand(1, 3, size, size)
    with _countable_kernels():
        with torch.no_grad():
            target = metric.embed(torch.rand(1, 3, size, size))
            forward = _counted(lambda: metric.embed(x))
        xg = x.clone().requires_grad_(True)
        forward_backward = _counted(lambda: metric.distance(metric.embed(xg), target).sum().backward())
    return forward, forward_backward
