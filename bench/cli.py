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


def parse_threat(text: str) -> tuple[str, list[float]]:
    """``NORM:EPS[,EPS...]`` as in ``l2:0.5,1,2,3`` or ``linf:4/255``."""
    norm, sep, radii = text.partition(":")
    norm = norm.strip()
    if not sep or norm not in ("l2", "linf"):
        raise BenchError(f"--threat {text!r}: write NORM:EPS[,EPS...] with NORM l2 or linf, e.g. l2:0.5,1 or linf:4/255")
    return norm, parse_eps(radii)


class _ReplaceDefault(argparse.Action):
    """``append`` that starts from scratch on first use, so a preset's list is replaced, not extended."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        seen = getattr(namespace, f"_{self.dest}_given", False)
        current = list(getattr(namespace, self.dest) or []) if seen else []
        setattr(namespace, self.dest, current + [values])
        setattr(namespace, f"_{self.dest}_given", True)


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
            "  list                  metrics (with weight availability), datasets, attacks, presets\n"
            "  fetch night|METRIC    download NIGHT (or a subset: --n) or a metric's weights\n"
            "  report DIR...         one table (md, csv, tex) from the records of one or more runs\n"
            "  plot DIR              robustness curves, certified curves, histograms, radii (PNG, PDF)\n"
            "  train distill|finetune  the two LipSim training steps (see `run_bench.py train --help`)\n\n"
            "examples:\n"
            "  python run_bench.py\n"
            "  python run_bench.py --preset paper --dry-run\n"
            "  torchrun --nproc_per_node=8 run_bench.py --preset paper\n"
            "  python run_bench.py --metrics pixel-l2 --dataset night:/data/nights --split test --n 500\n"
            "  python run_bench.py list"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("what to evaluate")
    what.add_argument("--preset", default=None, help="a named protocol (paper, paper-zero-shot, robust; see `list`); other options override it")
    what.add_argument("--metrics", type=_names, default=None, help="comma-separated metric names (default: the bundled ones; see `list`)")
    what.add_argument("--dataset", default="sample", help="NAME[:ROOT]: sample (default), night:ROOT, bapps:ROOT[/SUBSET]")
    what.add_argument("--split", default=None, help="dataset split (default: the dataset's test split)")
    what.add_argument("--n", "--num-triplets", dest="n", type=_positive_int("--n"), default=None, help="use only the first N triplets (under torchrun write --num-triplets: torchrun takes --n for its own --nnodes)")

    how = parser.add_argument_group("evaluations")
    how.add_argument("--attacks", type=_names, default=["apgd"], help="comma-separated attacks on the reference image, or none (default: apgd; see `list`)")
    how.add_argument("--norm", choices=("l2", "linf"), default=None, help="threat model of the attacks (default: l2)")
    how.add_argument("--eps", default=None, help="attack radii, comma-separated, fractions allowed (default l2: 0.25,0.5,1,2 on sample, 0.5,1,2,3 elsewhere; linf: 2/255,4/255,8/255); also the certified radii unless --certify-eps")
    how.add_argument("--threat", action=_ReplaceDefault, default=None, metavar="NORM:EPS,...", help="repeatable: several threat models in one run, e.g. --threat l2:0.5,1 --threat linf:4/255 (instead of --norm/--eps)")
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
    run.add_argument("--download", action=argparse.BooleanOptionalAction, default=False, help="fetch missing data and weights first (needs network; default: on for presets, off otherwise)")
    run.add_argument("--dry-run", action="store_true", help="print what the run would download and compute, and its estimated GPU time; compute nothing")
    return parser


def parse_run_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse run options; a ``--preset`` supplies defaults that explicit options override."""
    parser = build_run_parser()
    known, _ = parser.parse_known_args(argv)
    if known.preset is not None:
        from bench.presets import get_preset

        parser.set_defaults(**get_preset(known.preset).options)
    return parser.parse_args(argv)


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
    if args.threat and (args.eps is not None or args.norm is not None) and getattr(args, "_threat_given", False):
        raise BenchError("give either --threat or --norm/--eps, not both")
    # explicit --norm/--eps replace a preset's threat models
    threats = [parse_threat(t) for t in args.threat] if args.threat and args.eps is None and args.norm is None else None
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
        norm=args.norm or "l2",
        eps=parse_eps(args.eps) if args.eps is not None else None,
        threats=threats,
        steps=args.steps,
        restarts=args.restarts,
        certify=args.certify,
        certify_eps=parse_eps(args.certify_eps) if args.certify_eps is not None else None,
        histogram=args.histogram,
        histogram_eps=parse_eps(str(args.histogram_eps))[0] if args.histogram_eps is not None else None,
        workers=args.workers,
        download=args.download,
    )


def cmd_run(argv: Sequence[str]) -> int:
    from bench.runner import run_benchmark

    args = parse_run_args(argv)
    config = config_from_args(args)
    if args.dry_run:
        from bench.dryrun import print_dry_run

        print_dry_run(config, preset=args.preset)
        return 0
    from bench.distributed import init_shard

    shard = init_shard(config.device)
    try:
        started = time.perf_counter()
        result = run_benchmark(config, shard)
    finally:
        shard.close()
    if result is not None:
        print(result.markdown)
        print(f"\nwrote {result.out_dir}/ (scores.csv/.md/.tex, triplets.csv, records/, run.log) in {time.perf_counter() - started:.1f} s")
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
    from bench.presets import PRESETS

    print("\npresets (--preset NAME; add --dry-run to see what it needs):")
    for preset in PRESETS.values():
        print(f"  {preset.name:<18} {preset.description}\n  {'':<18} metrics: {', '.join(preset.options.get('metrics', []))}")
    return 0


def cmd_report(argv: Sequence[str]) -> int:
    from bench.collect import report_runs

    parser = argparse.ArgumentParser(prog="run_bench.py report", description="One table (scores.csv/.md/.tex) from the records of one or more run folders.")
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with a records/ folder)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the tables (default: the run folder when one is given, else ./report)")
    args = parser.parse_args(argv)
    out = args.out or (args.runs[0] if len(args.runs) == 1 else Path("report"))
    document = report_runs(list(args.runs), out)
    print(document.markdown)
    print(f"\nwrote {out}/scores.csv, scores.md, scores.tex, triplets.csv")
    return 0


def cmd_plot(argv: Sequence[str]) -> int:
    from bench.plots import plot_run

    parser = argparse.ArgumentParser(prog="run_bench.py plot", description="Figures (PNG and PDF) from a run folder's scores.csv, triplets.csv and histogram.csv.")
    parser.add_argument("run", type=Path, help="a run folder")
    parser.add_argument("--out", type=Path, default=None, help="where to write the figures (default: RUN/plots)")
    args = parser.parse_args(argv)
    if not (args.run / "scores.csv").is_file():
        raise BenchError(f"{args.run} has no scores.csv; run the benchmark (or `run_bench.py report {args.run}`) first")
    paths = plot_run(args.run, args.out)
    print("\n".join(f"wrote {p}" for p in paths) or "nothing to plot")
    return 0


def cmd_fetch(argv: Sequence[str]) -> int:
    from bench.downloads import ensure_weights

    parser = argparse.ArgumentParser(
        prog="run_bench.py fetch",
        description="Download NIGHT (all of a split, or the part --n triplets need) or metrics' weights. Needs network.",
    )
    parser.add_argument("what", nargs="+", help="night, or metric names (see `list`)")
    parser.add_argument("--split", default="test", help="NIGHT split to fetch (default: test)")
    parser.add_argument("--n", type=_positive_int("--n"), default=None, help="only the first N triplets of the split")
    parser.add_argument("--root", type=Path, default=None, help="where NIGHT goes (default: $LIPSIM_BENCH_DATA/nights or ~/.cache/lipsim_bench/nights)")
    parser.add_argument("--pins", type=Path, default=None, help="JSON of sha256 pins {archive path: sha256} (e.g. another machine's ROOT/.fetch/manifest.json)")
    args = parser.parse_args(argv)
    for item in args.what:
        if item == "night":
            from bench.datasets.night_fetch import fetch_night

            fetch_night(args.root, args.split, args.n, pins=args.pins)
            print(f"night ({args.split}{f', first {args.n}' if args.n else ''}): done")
        else:
            ensure_weights(item)
            print(f"{item}: weights here")
    return 0


def cmd_train(argv: Sequence[str]) -> int:
    from bench.training import students  # noqa: F401  (registers the trainable architectures)
    from bench.training.cli import cmd_train as train

    return train(argv)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "run": cmd_run, "list": cmd_list, "train": cmd_train, "report": cmd_report, "plot": cmd_plot, "fetch": cmd_fetch,
}


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
