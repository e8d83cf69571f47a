"""Write bench/protocol/cost_table.json: FLOPs per image of every benchmarked metric, for the dry run's estimate.

Usage: python benchmarks/flops.py [--metric NAME ...] [--size 224] [--output bench/protocol/cost_table.json]
(named metrics replace their own rows of an existing table; with none, the table is written anew)
Each metric is built with random weights (the FLOPs do not depend on the weights' values, and nothing
needs downloading) in its own process: several large models in one process run 3-10x slower.
``lipsim`` (the official checkpoint) is measured as its architecture, ``LipSim("small")``. Counts
come from :func:`lipsim_bench.protocol.cost.count_flops` (FlopCounterMode, batch 1); the CPU time per image (batch 8,
2 threads, one timed run after a warm-up, on whatever else the machine runs) is indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lipsim_bench.protocol.cost import COST_TABLE, count_flops  # noqa: E402

DEFAULT_METRICS = (
    "clip",
    "open-clip",
    "dino",
    "lpips",
    "rclip",
    "rclip-tecoa-vitb16",
    "rclip-tecoa-vitb32",
    "dreamsim-clip",
    "dreamsim-open-clip",
    "dreamsim-dino",
    "dreamsim",
    "lipsim",
    "lipsim-tiny",
    "lipsim-tiny-stlpips",
    "convsim-tiny",
    "convsim-tiny-noise",
    "stlpips-alex",
    "stlpips-vgg",
    "pixel-l2",
)
#: Metrics whose factory takes no ``pretrained`` argument (their weights ship with the project).
BUNDLED = (
    "lipsim-tiny",
    "lipsim-tiny-stlpips",
    "convsim-tiny",
    "convsim-tiny-noise",
    "stlpips-alex",
    "stlpips-vgg",
    "pixel-l2",
)
NOTE = (
    "FLOPs per image from torch.utils.flop_counter.FlopCounterMode: matmul and convolution FLOPs only "
    "(2 x multiply-adds); elementwise ops, norms and softmax are not counted. forward = embed under no_grad; "
    "forward_backward = distance(embed(x), e).sum().backward() to the input pixels with frozen parameters "
    "(one attack step). Batch 1, random weights; lipsim = the LipSim('small') architecture. "
    "cpu_forward_s_per_image: batch 8, 2 threads, shared CPU, indicative only."
)


def build(name: str) -> torch.nn.Module:
    """The metric with random weights, in eval mode with frozen parameters (as the benchmark runs it)."""
    from lipsim_bench.metrics.registry import create_metric

    if name == "lipsim":  # the official checkpoint is not needed for its cost
        from lipsim_bench.metrics.lipsim.metric import LipSim

        return LipSim("small").eval().requires_grad_(False)
    if name in BUNDLED:
        return create_metric(name)
    return create_metric(name, pretrained=False)


def cpu_seconds_per_image(metric: torch.nn.Module, size: int, batch: int = 8) -> float:
    """Wall seconds per image of a no_grad embed at ``batch`` (after one warm-up call)."""
    x = torch.rand(batch, 3, size, size)
    with torch.no_grad():
        metric.embed(x)
        start = time.perf_counter()
        metric.embed(x)
    return (time.perf_counter() - start) / batch


def measure(name: str, size: int, threads: int) -> dict[str, float]:
    """One metric's row of the table."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    start = time.perf_counter()
    metric = build(name)
    build_s = time.perf_counter() - start
    forward, forward_backward = count_flops(metric, size)
    return {
        "forward_gflops": round(forward / 1e9, 4),
        "forward_backward_gflops": round(forward_backward / 1e9, 4),
        "params_m": round(sum(p.numel() for p in metric.parameters()) / 1e6, 3),
        "cpu_forward_s_per_image": float(f"{cpu_seconds_per_image(metric, size):.3g}"),
        "build_s": round(build_s, 1),
    }


def run_child(name: str, size: int, threads: int) -> dict[str, float] | None:
    """``measure`` in a fresh process; None (and the reason printed) when it fails."""
    command = [sys.executable, __file__, "--child", "--metric", name, "--size", str(size), "--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        print(f"{name:<20} skipped: {lines[-1] if lines else f'exit code {result.returncode}'}", flush=True)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", action="append", help="metric name (repeatable); default: every benchmarked metric")
    parser.add_argument("--size", type=int, default=224, help="input side (NIGHT is fed at 224)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=COST_TABLE)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one metric, printed as JSON on the last line
        print(json.dumps(measure(args.metric[0], args.size, args.threads)))
        return
    rows: dict[str, dict[str, float]] = {}
    print(f"{'metric':<20} {'fwd GFLOPs':>11} {'fwd+bwd GFLOPs':>15} {'params':>9} {'cpu s/img':>10} {'build s':>8}")
    for name in args.metric or DEFAULT_METRICS:
        row = run_child(name, args.size, args.threads)
        if row is None:
            continue
        print(
            f"{name:<20} {row['forward_gflops']:>11.3f} {row['forward_backward_gflops']:>15.3f} {row['params_m']:>8.1f}M "
            f"{row['cpu_forward_s_per_image']:>10.3f} {row.pop('build_s'):>8.1f}",
            flush=True,
        )
        rows[name] = row
    if args.metric and args.output.is_file():  # named metrics update their rows; the others' stay
        rows = {**json.loads(args.output.read_text()).get("metrics", {}), **rows}
    table = {
        "generated_by": "python benchmarks/flops.py",
        "torch": torch.__version__,
        "input": f"1x3x{args.size}x{args.size}",
        "note": NOTE,
        "metrics": rows,
    }
    args.output.write_text(json.dumps(table, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
