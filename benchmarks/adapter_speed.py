"""Throughput of the foundation-model adapters: embed (forward) and embed + backward to the pixels.

Usage: python benchmarks/adapter_speed.py [--metric NAME ...] [--batch 8] [--size 224] [--repeats 3]
Each adapter is built with random weights (``pretrained=False``: the cost does not depend on the
weights' values, and nothing needs downloading) and measured in its own process, with 2 threads:
several models in one process measure 3-10x slower. Forward = ``embed`` under no_grad; forward +
backward = ``distance(embed(x), e_fixed).sum().backward()`` with ``x.requires_grad`` (what one attack
step costs on the reference). Reports the median over ``--repeats`` timed runs after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

#: One name per architecture (the rclip FARE variants share their TeCoA twin's architecture).
DEFAULT_METRICS = (
    "lpips",
    "clip",
    "open-clip",
    "rclip-tecoa-vitb32",
    "dino",
    "rclip-tecoa-vitb16",
    "rclip",
    "dreamsim-clip",
    "dreamsim-open-clip",
    "dreamsim-dino",
    "dreamsim",
)


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, batch: int, size: int, repeats: int, threads: int) -> dict[str, float]:
    import lipsim_bench.metrics.foundation  # noqa: F401  (registers the adapters)
    from lipsim_bench.metrics.registry import get_metric_spec

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    start = time.perf_counter()
    metric = get_metric_spec(name).factory(pretrained=False).eval().requires_grad_(False)
    build_s = time.perf_counter() - start
    x = torch.rand(batch, 3, size, size)
    with torch.no_grad():
        target = metric.embed(torch.rand(batch, 3, size, size))

    def forward() -> None:
        with torch.no_grad():
            metric.embed(x)

    def forward_backward() -> None:
        xg = x.clone().requires_grad_(True)
        metric.distance(metric.embed(xg), target).sum().backward()
        assert xg.grad is not None

    fwd = _timed(forward, repeats)
    fwd_bwd = _timed(forward_backward, repeats)
    params = sum(p.numel() for p in metric.parameters())
    return {
        "build_s": build_s,
        "fwd_s": fwd,
        "fwd_bwd_s": fwd_bwd,
        "params_m": params / 1e6,
        "dim": int(target[0].numel()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", action="append", help="adapter name (repeatable); default: one per architecture")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one measurement, printed as JSON on the last line
        print(json.dumps(measure(args.metric[0], args.batch, args.size, args.repeats, args.threads)))
        return
    print(
        f"batch {args.batch} x 3x{args.size}x{args.size}, {args.threads} threads, random weights, one process per row, median of {args.repeats}"
    )
    print(
        f"{'metric':<20} {'params':>8} {'dim':>7} {'build s':>8} {'fwd s':>7} {'fwd img/s':>10} {'fwd+bwd s':>10} {'fwd+bwd img/s':>14}"
    )
    for name in args.metric or DEFAULT_METRICS:
        command = [
            sys.executable,
            __file__,
            "--child",
            "--metric",
            name,
            "--batch",
            str(args.batch),
            "--size",
            str(args.size),
            "--repeats",
            str(args.repeats),
            "--threads",
            str(args.threads),
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(
                f"{name:<20} failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}"
            )
            continue
        r = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"{name:<20} {r['params_m']:>7.1f}M {r['dim']:>7d} {r['build_s']:>8.1f} {r['fwd_s']:>7.2f} {args.batch / r['fwd_s']:>10.1f} "
            f"{r['fwd_bwd_s']:>10.2f} {args.batch / r['fwd_bwd_s']:>14.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
