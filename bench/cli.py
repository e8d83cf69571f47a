"""Command line: ``run_bench.py [run] [options]``, ``run_bench.py list``.

Bad input ends in one line on stderr naming the thing and the fix, and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from attacks import list_attacks
from bench.datasets import list_datasets, parse_dataset_arg
from bench.devices import resolve_device
from bench.errors import BenchError
from metrics import MetricError, default_metrics, get_metric_spec, list_metrics

if TYPE_CHECKING:
    from bench.runner import RunConfig



def parse_eps(text: str) -> list[float]:
    """Comma-separated radii; fractions like 36/255 are allowed. Rejects NaN, inf and negatives."""
    values: list[float] = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            value = float(Fraction(item)) if "/" in item else float(item)
        except (ValueError, ZeroDivisionError):
            raise BenchError(f"--eps: {item!r} is not a number; give radii like 0.5,1,2 or 36/255") from None
        if math.isnan(value) or math.isinf(value):
            raise BenchError(f"--eps: {item!r} is not a finite number; give radii like 0.5,1,2")
        if value < 0:
            raise BenchError(f"--eps: {item} is negative; a perturbation radius must be >= 0")
        values.append(value)
    if not values:
        raise BenchError("--eps is empty; give radii like 0.5,1,2")
    return values


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _positive_int(option: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{option} must be positive, got {value}")
        return value

    return parse


def build_run_parser(prog: str = "run_bench.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Benchmark perceptual similarity metrics on 2AFC data: natural score, attacks on the "
            "reference image, certified scores. With no options: the bundled metrics on the bundled "
            "'sample' test split, offline."
        ),
        epilog=(
            "other commands:\n"
            "  list                  metrics (with weight availability), datasets, attacks\n"
            "  train distill|finetune  the two LipSim training steps (see `run_bench.py train --help`)\n\n"
            "examples:\n"
            "  python run_bench.py\n"
            "  python run_bench.py --metrics pixel-l2 --dataset night:/data/nights --split test --n 500\n"
            "  python run_bench.py list"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("what to evaluate")
    what.add_argument("--metrics", type=_names, default=None, help="comma-separated metric names (default: the bundled ones; see `list`)")
    what.add_argument("--dataset", default="sample", help="NAME[:ROOT]: sample (default), night:ROOT, bapps:ROOT[/SUBSET]")
    what.add_argument("--split", default=None, help="dataset split (default: the dataset's test split)")
    what.add_argument("--n", type=_positive_int("--n"), default=None, help="use only the first N triplets")

    how = parser.add_argument_group("evaluations")
    how.add_argument("--attacks", type=_names, default=["apgd"], help="comma-separated attacks on the reference image, or none (default: apgd; see `list`)")
    how.add_argument("--norm", choices=("l2", "linf"), default="l2", help="threat model of the attacks (default: l2)")
    how.add_argument("--eps", default=None, help="attack radii, comma-separated, fractions allowed (default: 0.25,0.5,1,2 on sample, 0.5,1,2,3 elsewhere); also the certified radii unless --certify-eps")
    how.add_argument("--steps", type=_positive_int("--steps"), default=100, help="attack iterations (default: 100)")
    how.add_argument("--restarts", type=_positive_int("--restarts"), default=1, help="attack restarts (default: 1)")
    how.add_argument("--certify", action=argparse.BooleanOptionalAction, default=True, help="certified scores for metrics with a Lipschitz bound (default: on)")
    how.add_argument("--histogram", action="store_true", help="direct attack on each reference: histogram of d(x, x+delta) (PNG, PDF, CSV)")
    how.add_argument("--histogram-eps", type=float, default=None, help="l2 radius of the direct attack (default: 0.5 on sample, 1 elsewhere)")
    how.add_argument("--certify-eps", default=None, help="certified radii (default: 36/255,72/255,108/255, the paper's)")

    run = parser.add_argument_group("running")
    run.add_argument("--batch-size", type=_positive_int("--batch-size"), default=100, help="triplets per batch (default: 100)")
    run.add_argument("--device", default=None, help="cpu, cuda or cuda:K (default: cuda when available)")
    run.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: 0)")
    run.add_argument("--workers", type=int, default=0, help="image-loading worker processes (default: 0)")
    run.add_argument("--weights-dir", type=Path, default=None, help="folder with pretrained weights (sets LIPSIM_BENCH_WEIGHTS_DIR; default: the libraries' caches)")
    run.add_argument("--out", type=Path, default=None, help="run folder (default: results/<dataset>-<split>; reruns resume)")
    return parser


def config_from_args(args: argparse.Namespace) -> "RunConfig":
    from bench.runner import RunConfig

    if args.weights_dir is not None:
        if not args.weights_dir.is_dir():
            raise BenchError(f"--weights-dir {args.weights_dir} is not a folder")
        os.environ["LIPSIM_BENCH_WEIGHTS_DIR"] = str(args.weights_dir)

    metrics = args.metrics if args.metrics is not None else default_metrics()
    if not metrics:
        raise BenchError("--metrics is empty; name at least one metric (see `python run_bench.py list`)")
    for name in metrics:
        get_metric_spec(name)  # unknown names fail here, before any work
    known_attacks = list_attacks()
    if args.attacks == ["none"]:
        args.attacks = []
    for name in args.attacks:
        if name not in known_attacks:
            raise BenchError(f"unknown attack {name!r}; known attacks: {', '.join(known_attacks) or '(none in this version)'}")
    parse_dataset_arg(args.dataset)
    if args.workers < 0:
        raise BenchError(f"--workers must be >= 0, got {args.workers}")
    return RunConfig(
        metrics=metrics,
        dataset=args.dataset,
        split=args.split,
        n=args.n,
        batch_size=args.batch_size,
        device=str(resolve_device(args.device)),
        seed=args.seed,
        out=args.out,
        attacks=args.attacks,
        norm=args.norm,
        eps=parse_eps(args.eps) if args.eps is not None else None,
        steps=args.steps,
        restarts=args.restarts,
        certify=args.certify,
        certify_eps=parse_eps(args.certify_eps) if args.certify_eps is not None else None,
        histogram=args.histogram,
        histogram_eps=parse_eps(str(args.histogram_eps))[0] if args.histogram_eps is not None else None,
        workers=args.workers,
    )


def cmd_run(argv: Sequence[str]) -> int:
    from bench.runner import run_benchmark

    args = build_run_parser().parse_args(argv)
    config = config_from_args(args)
    started = time.perf_counter()
    result = run_benchmark(config)
    print(result.markdown)
    print(f"\nwrote {result.out_dir}/ (scores.csv, scores.md, triplets.csv, records/) in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_list(argv: Sequence[str]) -> int:
    argparse.ArgumentParser(prog="run_bench.py list", description="List metrics, datasets and attacks.").parse_args(argv)
    print("metrics (name, bundled, weights here, description):")
    for name in list_metrics():
        spec = get_metric_spec(name)
        available = "yes" if spec.is_available() else "no"
        bundled = "bundled" if spec.bundled else "-"
        line = f"  {name:<18} {bundled:<8} weights: {available:<4} {spec.description}"
        if not spec.is_available() and spec.how_to_get:
            line += f"\n  {'':<18} get them: {spec.how_to_get}"
        print(line)
    print("\ndatasets:")
    for ds in list_datasets():
        splits = ", ".join(ds.splits) if ds.splits else "subsets under ROOT, or all"
        usage = f"{ds.name}:ROOT" if ds.needs_root else ds.name
        print(f"  {usage:<18} splits: {splits}\n  {'':<18} {ds.description}")
    print("\nattacks:")
    attacks = list_attacks()
    print("  " + (", ".join(attacks) if attacks else "(none in this version)"))
    return 0


def cmd_train(argv: Sequence[str]) -> int:
    from bench.training import students  # noqa: F401  (registers the trainable architectures)
    from bench.training.cli import cmd_train as train

    return train(argv)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {"run": cmd_run, "list": cmd_list, "train": cmd_train}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``run_bench.py`` and the ``lipsim-bench`` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    try:
        return COMMANDS[command](argv)
    except (BenchError, MetricError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished units are saved under the run folder; rerun the same command to resume", file=sys.stderr)
        return 130
