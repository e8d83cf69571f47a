"""Each attack unit of a run against its floor: its passes at the metric's bare speed, at the batch sizes it used.

Usage: python benchmarks/attack_floor.py [--out DIR] [--threads 2] [-- RUN_BENCH_ARGUMENTS ...]
       (default: the bundled default run, ``python run_bench.py --out DIR``, in a fresh DIR)

Runs ``run_bench.py`` in this process and, at the 2AFC classifier, counts every call an attack unit makes:
its batch size and whether a gradient flows (a pass: reference images through forward and backward) or not
(a query or a prediction: forward only). Each unit's wall seconds are timed around its ``run``. Then, per
metric, the seconds of one bare forward+backward (the classifier's logits summed, backward to the input) and
of one forward are measured on the run's own images at a grid of batch sizes, and interpolated: the floor of
a unit is the sum over its calls of the bare seconds at that call's size. Printed per metric and radius:
triplets attacked, passes, calls, seconds, seconds per pass, the floor per pass at the sizes used and at one
full batch, and the unit's seconds over its floor. ``thinning`` is what the smaller calls cost over full
batches (early stopping drops fooled triplets; one loader batch per unit leaves nothing to pool).

Writes DIR/attack_passes.json: per attack unit, the attacked and fooled triplets, passes, forward images
and the attack's budget (steps or queries x restarts), which ``benchmarks/attack_work.py`` reads to learn
the share of its budget an attacked triplet really takes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

GRID = (1, 2, 4, 8, 16, 32, 64, 100)
FORMAT = 1


def budget(evaluation) -> tuple[int, bool]:
    """Per attacked triplet: the attack's steps (or queries) times restarts, and whether it takes gradients."""
    return evaluation.budget(), bool(getattr(evaluation.attack_cls, "uses_gradients", True))


def instrumented_run(argv: list[str]) -> list[dict]:
    """Run run_bench.py with ``argv``; per attack unit: its calls, seconds and rows' counts."""
    from lipsim_bench.cli import main
    from lipsim_bench.evaluations.attack import AttackEvaluation
    from lipsim_bench.evaluations.options import options_dict
    from lipsim_bench.evaluations.twoafc import TwoAFCClassifier

    units: list[dict] = []
    calls: list[tuple[int, bool]] | None = None
    forward, run = TwoAFCClassifier.forward, AttackEvaluation.run

    def counting_forward(self, x_ref):
        if calls is not None:
            calls.append((len(x_ref), bool(torch.is_grad_enabled() and x_ref.requires_grad)))
        return forward(self, x_ref)

    def counting_run(self, metric, batches, ctx):
        nonlocal calls
        calls = []
        started = time.perf_counter()
        rows = run(self, metric, batches, ctx)
        seconds = time.perf_counter() - started
        attacked = rows["attacked"].astype(bool) if "attacked" in rows else rows["correct"].astype(bool)
        steps, gradients = budget(self)
        units.append(
            {
                "metric": ctx.metric_name,
                "evaluation": self.name,
                "options": options_dict(self.options),
                "triplets": int(len(rows)),
                "norm": ctx.threat.norm,
                "eps": ctx.threat.eps,
                "budget": steps,
                "gradients": gradients,
                "correct": int(rows["correct"].astype(bool).sum()),
                "attacked": int(attacked.sum()),
                "fooled": int((attacked & rows["flipped"].astype(bool)).sum()),
                "passes": sum(b for b, grad in calls if grad),
                "forwards": sum(b for b, grad in calls if not grad),
                "calls": calls,
                "seconds": seconds,
            }
        )
        calls = None
        return rows

    TwoAFCClassifier.forward, AttackEvaluation.run = counting_forward, counting_run
    try:
        code = main(argv)
    finally:
        TwoAFCClassifier.forward, AttackEvaluation.run = forward, run
    if code != 0:
        raise SystemExit(f"run_bench.py {' '.join(argv)} exited {code}")
    return units


def bare_seconds(metric_name: str, dataset: str, sizes: tuple[int, ...]) -> dict[str, dict[int, float]]:
    """Seconds of one bare forward+backward and one forward of the 2AFC classifier, per batch size."""
    from lipsim_bench.datasets import create_dataset
    from lipsim_bench.evaluations.twoafc import TwoAFCClassifier
    from lipsim_bench.metrics import create_metric

    data = create_dataset(dataset).head(max(sizes))
    items = [data[i] for i in range(len(data))]
    ref, x0, x1 = (torch.stack([item[k] for item in items]) for k in ("ref", "x0", "x1"))
    metric = create_metric(metric_name).eval().requires_grad_(False)
    out: dict[str, dict[int, float]] = {"pass": {}, "forward": {}}
    for b in sizes:
        b = min(b, len(ref))
        classifier = TwoAFCClassifier.from_images(metric, x0[:b], x1[:b], metric_name)

        def one_pass() -> None:
            x = ref[:b].clone().requires_grad_(True)
            torch.autograd.grad(classifier(x).sum(), [x])

        def one_forward() -> None:
            with torch.no_grad():
                classifier(ref[:b])

        for kind, fn in (("pass", one_pass), ("forward", one_forward)):
            fn()  # warm-up
            repeats = max(2, 64 // b)
            started = time.perf_counter()
            for _ in range(repeats):
                fn()
            out[kind][b] = (time.perf_counter() - started) / repeats
    return out


def floor(calls: list[tuple[int, bool]], bare: dict[str, dict[int, float]]) -> float:
    """Seconds of the unit's calls at the bare speed (interpolated between the measured sizes)."""
    total = 0.0
    for b, grad in calls:
        table = bare["pass" if grad else "forward"]
        sizes = sorted(table)
        total += float(np.interp(b, sizes, [table[s] for s in sizes]))
    return total


def estimated_passes(units: list[dict], work_file: Path | None) -> list[float]:
    """The dry run's attack passes (images through forward+backward, or queries) of each unit, by its Estimator."""
    from lipsim_bench.attacks.base import ThreatModel
    from lipsim_bench.evaluations import get_evaluation
    from lipsim_bench.evaluations.options import build_options
    from lipsim_bench.protocol.attack_work import load_attack_work
    from lipsim_bench.protocol.cost import pass_counts
    from lipsim_bench.protocol.estimate import Estimator

    threats = tuple(sorted({ThreatModel(u["norm"], u["eps"]) for u in units}, key=lambda t: (t.norm, t.eps)))
    estimator = Estimator(threats, work=load_attack_work(work_file))
    counted = []
    for u in units:
        cls = get_evaluation(u["evaluation"])
        options = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in u["options"].items()}
        evaluation = cls(build_options(cls.Options, u["evaluation"], options))
        threat = ThreatModel(u["norm"], u["eps"])
        fraction = estimator.attacked_fraction(u["metric"], evaluation, threat)
        share = estimator.step_share(u["metric"], evaluation, threat)
        attacked = (1.0 if fraction is None else fraction) * (1.0 if share is None else share)
        forward, backward = pass_counts(evaluation, u["triplets"], threat, attacked)
        bare = pass_counts(evaluation, u["triplets"], threat, 0.0)
        counted.append(backward - bare[1] if u["gradients"] else forward - bare[0])
    return counted


def compare(units: list[dict], work_file: Path | None) -> None:
    """Measured passes beside the dry run's count, per unit and in all."""
    estimate = estimated_passes(units, work_file)
    print(f"dry-run count ({work_file or 'bench/protocol/attack_work.json'}) vs passes made")
    print(
        f"{'metric':<20} {'attack':<12} {'eps':>6} {'correct':>7} {'attacked':>8} {'passes':>7} {'dry run':>8} {'ratio':>6}"
    )
    for u, e in zip(units, estimate):
        made = u["passes"] if u["gradients"] else u["forwards"]
        print(
            f"{u['metric']:<20} {u['evaluation']:<12} {u['eps']:6g} {u['correct']:7d} {u['attacked']:8d} {made:7d} "
            f"{e:8.0f} " + (f"{e / made:6.2f}" if made else f"{'-':>6}")
        )
    made = sum(u["passes"] if u["gradients"] else u["forwards"] for u in units)
    print(f"all: {made} passes made, the dry run counts {sum(estimate):.0f} ({sum(estimate) / max(made, 1):.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a fresh temporary one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dataset", default="sample", help="images for the bare passes (the run's dataset)")
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        metavar="RUN_FOLDER",
        help="no run: print the dry run's passes beside those RUN_FOLDER/attack_passes.json recorded",
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="attack_work.json for --compare (default: the committed)"
    )
    parser.add_argument("run_args", nargs="*", help="run_bench.py arguments after --")
    args = parser.parse_args()
    if args.compare:
        compare(json.loads((args.compare / "attack_passes.json").read_text())["units"], args.work)
        return
    torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="attack-floor-"))
    argv = ["--out", str(out), *args.run_args]
    started = time.perf_counter()
    units = instrumented_run(argv)
    run_seconds = time.perf_counter() - started
    by_metric: dict[str, list[dict]] = defaultdict(list)
    for unit in units:
        by_metric[unit["metric"]].append(unit)
    print(f"run_bench.py {' '.join(argv)}: {run_seconds:.1f} s, {len(units)} attack units; {args.threads} threads")
    head = (
        f"{'metric':<20} {'attack':<12} {'eps':>6} {'attacked':>8} {'passes':>7} {'calls':>5} {'s':>7} "
        f"{'s/pass':>8} {'floor/pass':>10} {'full-batch':>10} {'unit/floor':>10} {'thinning':>8}"
    )
    print(head)
    totals = defaultdict(float)
    for metric_name, metric_units in by_metric.items():
        sizes = tuple(
            sorted({min(g, max(b for u in metric_units for b, _ in u["calls"] or [(1, True)])) for g in GRID})
        )
        bare = bare_seconds(metric_name, args.dataset, sizes)
        full = max(bare["pass"])
        for u in metric_units:
            made = u["passes"] if u["gradients"] else u["forwards"]  # queries of an attack without gradients
            at_sizes = floor(u["calls"], bare)
            at_full = u["passes"] * bare["pass"][full] / full + u["forwards"] * bare["forward"][full] / full
            u.update(floor_seconds=at_sizes, full_batch_seconds=at_full)
            per = (lambda s, made=made: f"{1e3 * s / made:8.2f}") if made else (lambda s: f"{'-':>8}")
            print(
                f"{metric_name:<20} {u['evaluation']:<12} {u['eps']:6g} {u['attacked']:8d} {made:7d} "
                f"{len(u['calls']):5d} {u['seconds']:7.2f} {per(u['seconds'])} {per(at_sizes):>10} {per(at_full):>10} "
                + (f"{u['seconds'] / at_sizes:10.2f}" if at_sizes > 0 else f"{'-':>10}")
                + (f" {at_sizes / at_full:8.2f}" if at_full > 0 else f" {'-':>8}")
            )
            for key in ("seconds", "floor_seconds", "full_batch_seconds"):
                totals[key] += u[key]
            totals["passes"] += made
    print("(s/pass, floor/pass, full-batch: milliseconds per pass; floor: bare passes at the sizes used)")
    print(
        f"all attack units: {totals['seconds']:.1f} s for {int(totals['passes'])} passes; floor at the sizes used "
        f"{totals['floor_seconds']:.1f} s ({totals['seconds'] / max(totals['floor_seconds'], 1e-9):.2f}x), at full "
        f"batches {totals['full_batch_seconds']:.1f} s (thinning costs {totals['floor_seconds'] - totals['full_batch_seconds']:.1f} s)"
    )
    written = {
        "format": FORMAT,
        "command": "python benchmarks/attack_floor.py " + " ".join(sys.argv[1:]),
        "run_args": argv,
        "units": [
            {k: v for k, v in u.items() if k != "calls"} | {"call_sizes": [b for b, _ in u["calls"]]} for u in units
        ],
    }
    (out / "attack_passes.json").write_text(json.dumps(written, indent=1) + "\n")
    print(f"wrote {out / 'attack_passes.json'}\n")
    compare(written["units"], None)


if __name__ == "__main__":
    main()
