"""Throughput of a 100-step APGD on 2AFC triplets, with x0/x1 embeddings cached or recomputed.

Usage: python benchmarks/attack_speed.py [--metric convsim-tiny|lipsim-tiny] [--n 64] [--steps 100]
Runs each (metric, mode) in its own process, as several models in one process run slower.
Random weights suffice: the cost does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

MODES = ("cached", "recomputed")


def build(name: str):
    from lipsim_bench.metrics.convsim import ConvSim
    from lipsim_bench.metrics.lipsim.metric import LipSim

    metric = {"convsim-tiny": ConvSim, "lipsim-tiny": lambda: LipSim("tiny")}[name]()
    return metric.requires_grad_(False).eval()


class RecomputingClassifier(torch.nn.Module):
    """The 2AFC classifier without the cache: x0 and x1 re-embedded at every step (the official code's way)."""

    def __init__(self, metric, x0: torch.Tensor, x1: torch.Tensor) -> None:
        super().__init__()
        self.metric, self.x0, self.x1 = metric, x0, x1

    def restrict(self, index: torch.Tensor) -> RecomputingClassifier:
        return RecomputingClassifier(self.metric, self.x0[index], self.x1[index])

    def forward(self, x_ref: torch.Tensor) -> torch.Tensor:
        e_ref, e0, e1 = self.metric.embed(torch.cat([x_ref, self.x0, self.x1])).chunk(3)
        return torch.stack([self.metric.distance(e_ref, e1), self.metric.distance(e_ref, e0)], dim=1)


def measure(name: str, mode: str, n: int, steps: int) -> float:
    from lipsim_bench.attacks.apgd import APGD
    from lipsim_bench.evaluations.twoafc import TwoAFCClassifier

    torch.set_num_threads(2)
    torch.manual_seed(0)
    metric = build(name)
    ref, x0, x1 = (torch.rand(n, 3, 64, 64) for _ in range(3))
    classifier = (
        TwoAFCClassifier.from_images(metric, x0, x1) if mode == "cached" else RecomputingClassifier(metric, x0, x1)
    )
    with torch.no_grad():
        y = classifier(ref).argmax(dim=1)  # every triplet starts "correct", so all n are attacked
    attack = APGD("l2", eps=1.0, steps=steps)
    start = time.perf_counter()
    attack(classifier, ref, y)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", action="append", choices=("convsim-tiny", "lipsim-tiny"))
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    if args.mode:  # child process: one measurement
        print(f"{measure(args.metric[0], args.mode, args.n, args.steps):.3f}")
        return
    print(f"APGD-CE l2, {args.steps} steps, {args.n} triplets of 3x64x64, 2 threads, one process per row")
    print(f"{'metric':<14} {'x0/x1 embeddings':<18} {'triplets/s':>10}")
    for name in args.metric or ["convsim-tiny", "lipsim-tiny"]:
        for mode in MODES:
            out = (
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--metric",
                        name,
                        "--mode",
                        mode,
                        "--n",
                        str(args.n),
                        "--steps",
                        str(args.steps),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            print(f"{name:<14} {mode:<18} {float(out):>10.2f}")


if __name__ == "__main__":
    main()
