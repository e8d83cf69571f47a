"""Attack passes saved by carrying flips across radii and skipping proven-robust triplets, and each
attack unit's cost against the floor (its forward+backward passes at the metric's bare speed).

Usage: python benchmarks/steps_saved.py [--n 100] [--metrics pixel-l2,convsim-tiny,lipsim-tiny]

Three modes of the default protocol (l2 APGD-CE 100 steps at 0.25, 0.5, 1, 2 on the sample test
split), each in its own process: ``independent`` (the paper's: every radius from scratch, every
triplet attacked), ``carry`` (flips carried, everything else attacked: verification mode) and
``carry+skip`` (the default). A pass is one reference image through forward and backward inside the
attack (counted at the 2AFC classifier); the floor is passes x one bare forward+backward per image,
timed on the same metric at batch 100 in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

MODES = {
    "independent": {"apgd": {"carry": False}, "verify": True},
    "carry": {"apgd": {"carry": True}, "verify": True},
    "carry+skip": {"apgd": {"carry": True}, "verify": False},
}
EPS = [0.25, 0.5, 1.0, 2.0]


def bare_pass_seconds(metric_name: str, size: int = 64, batch: int = 100) -> float:
    """Seconds per image of distance(embed(x), e).sum().backward(): the floor of one attack pass."""
    import torch

    from lipsim_bench.metrics import create_metric

    metric = create_metric(metric_name).eval().requires_grad_(False)
    x = torch.rand(batch, 3, size, size)
    with torch.no_grad():
        target = metric.embed(torch.rand(batch, 3, size, size))
    for _ in range(2):
        xi = x.clone().requires_grad_(True)
        metric.distance(metric.embed(xi), target).sum().backward()
    repeats, started = 5, time.perf_counter()
    for _ in range(repeats):
        xi = x.clone().requires_grad_(True)
        metric.distance(metric.embed(xi), target).sum().backward()
    return (time.perf_counter() - started) / (repeats * batch)


def measure(mode: str, metric_name: str, n: int) -> dict:
    """One mode on one metric: passes and seconds per attack unit (run in a process of its own)."""
    import torch

    import lipsim_bench as bench
    from lipsim_bench.evaluations.attack import AttackEvaluation
    from lipsim_bench.evaluations.twoafc import TwoAFCClassifier

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    count = {"passes": 0}
    per_eps: dict[float, int] = {}
    forward, run = TwoAFCClassifier.forward, AttackEvaluation.run

    def counting_forward(self, x_ref):
        if torch.is_grad_enabled() and x_ref.requires_grad:
            count["passes"] += len(x_ref)
        return forward(self, x_ref)

    def counting_run(self, metric, batches, ctx):
        before = count["passes"]
        rows = run(self, metric, batches, ctx)
        per_eps[ctx.threat.eps] = count["passes"] - before
        return rows

    TwoAFCClassifier.forward, AttackEvaluation.run = counting_forward, counting_run
    settings = MODES[mode]
    os.environ.pop("LIPSIM_BENCH_VERIFY", None)
    floor = bare_pass_seconds(metric_name)
    result = bench.evaluate(
        metric_name, "sample", ["apgd"], n=n, eps=EPS, apgd=settings["apgd"], verify=settings["verify"]
    )
    units = []
    for record in result.records:
        eps = record["threat"]["eps"]
        score = next(s["score"] for s in record["scores"] if s["eps"] == eps)
        units.append({"eps": eps, "passes": per_eps[eps], "seconds": record["config"]["seconds"], "score": score})
    return {
        "mode": mode,
        "metric": metric_name,
        "floor_s_per_pass": floor,
        "units": sorted(units, key=lambda u: u["eps"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--metrics", default="pixel-l2,convsim-tiny,lipsim-tiny")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "METRIC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.n)))
        return
    results = []
    for metric_name in args.metrics.split(","):
        for mode in MODES:
            done = subprocess.run(
                [sys.executable, __file__, "--n", str(args.n), "--one", mode, metric_name],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        f"l2 APGD-CE 100 steps on the first {args.n} sample test triplets; passes = reference images through forward+backward"
    )
    print(
        f"{'metric':<14} {'eps':>5} "
        + " ".join(f"{m + ' passes':>20}" for m in MODES)
        + f" {'saved':>7} {'score indep':>11} {'score default':>13} {'unit s':>7} {'s/floor':>8}"
    )
    for metric_name in args.metrics.split(","):
        by_mode = {r["mode"]: r for r in results if r["metric"] == metric_name}
        default = by_mode["carry+skip"]
        for i, eps in enumerate(EPS):
            counts = [by_mode[m]["units"][i]["passes"] for m in MODES]
            unit = default["units"][i]
            floor = unit["passes"] * default["floor_s_per_pass"]
            saved = 1 - counts[-1] / counts[0] if counts[0] else 0.0
            ratio = f"{unit['seconds'] / floor:8.2f}" if floor > 0 else f"{'-':>8}"
            print(
                f"{metric_name:<14} {eps:5g} " + " ".join(f"{c:20d}" for c in counts) + f" {saved:7.1%}"
                f" {by_mode['independent']['units'][i]['score']:11.2f} {unit['score']:13.2f} {unit['seconds']:7.1f} {ratio}"
            )
        totals = [sum(u["passes"] for u in by_mode[m]["units"]) for m in MODES]
        print(
            f"{metric_name:<14} {'all':>5} "
            + " ".join(f"{c:20d}" for c in totals)
            + f" {1 - totals[-1] / totals[0] if totals[0] else 0:7.1%}"
        )


if __name__ == "__main__":
    main()
