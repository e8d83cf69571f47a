"""Seconds per triplet of the ``smoothing`` certificate (n0 + n noisy references per triplet), per metric.

Usage: python benchmarks/smoothing_speed.py [--metric NAME ...] [--triplets 5] [--n 1000] [--n0 100] [--sigma 0.25]
       [--noise-batch 200] [--device cpu] [--threads 2]
Each metric runs in its own process (several models in one process measure 3-10x slower), through the
real runner (``bench.evaluate``, no run folder) on the first ``--triplets`` triplets of the bundled
sample test split: the natural unit first (it fills the shared clean embeddings), then the timed
smoothing unit. Prints seconds per triplet, and the same per reference forward pass.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_METRICS = ("pixel-l2", "convsim-tiny", "convsim-tiny-noise", "lipsim-tiny")


def measure(args: argparse.Namespace, name: str) -> dict[str, float]:
    import torch

    import lipsim_bench as bench
    from lipsim_bench.evaluations.base import EmbeddedBatch
    from lipsim_bench.evaluations.smoothing import Smoothing

    torch.set_num_threads(args.threads)
    timed: list[float] = []
    certify = Smoothing.certify_batch

    def timed_certify(self: Smoothing, metric, item: EmbeddedBatch, ctx):  # noqa: ANN001
        start = time.perf_counter()
        out = certify(self, metric, item, ctx)
        timed.append(time.perf_counter() - start)
        return out

    Smoothing.certify_batch = timed_certify  # the certificate alone: not the shared clean pass, not the scoring
    bench.evaluate(
        metric=name,
        n=args.triplets,
        evaluations=["natural", "smoothing"],
        device=args.device,
        smoothing={"n": args.n, "n0": args.n0, "sigma": args.sigma, "noise_batch": args.noise_batch},
    )
    seconds = sum(timed) / args.triplets
    return {"s_per_triplet": seconds, "ms_per_forward": 1000 * seconds / (args.n0 + args.n)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", action="append", help="metric name (repeatable); default: the bundled ones")
    parser.add_argument("--triplets", type=int, default=5)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--noise-batch", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args, args.metric[0])))
        return
    print(
        f"smoothing CERTIFY, n0 {args.n0} + n {args.n} references per triplet, sigma {args.sigma:g}, noise batch "
        f"{args.noise_batch}, {args.triplets} triplets, {args.device}, {args.threads} threads"
    )
    print(f"{'metric':<20} {'s/triplet':>10} {'ms/forward':>11}")
    for name in args.metric or DEFAULT_METRICS:
        command = [sys.executable, __file__, "--child", "--metric", name] + [
            f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("metric", "child")
        ]
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        if result.returncode != 0:
            print(f"{name:<20} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        row = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{name:<20} {row['s_per_triplet']:>10.3f} {row['ms_per_forward']:>11.3f}", flush=True)


if __name__ == "__main__":
    main()
