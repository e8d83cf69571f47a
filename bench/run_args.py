"""The run's command-line parser (options and presets); :mod:`lipsim_bench.run_request` turns them into a RunSpec.

``--evaluations natural,certified,apgd`` and repeatable ``--set NAME.OPTION=VALUE`` reach every
option of every evaluation; the older flags (``--attacks``, ``--certify``, ``--histogram``,
``--steps``, ``--restarts``, ``--certify-eps``, ``--histogram-eps``) and presets are shorthand
for them. ``--plugin FILE.py`` / ``--import MODULE`` load one-file metrics, attacks, evaluations.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable, Sequence
from pathlib import Path

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.targets import PERTURB_TARGETS
from lipsim_bench.plugins import load_plugins
from lipsim_bench.run.spec import parse_eps


def parse_threat(text: str) -> tuple[str, list[float]]:
    """``NORM:EPS[,EPS...]`` as in ``l2:0.5,1,2,3`` or ``linf:4/255``."""
    norm, sep, radii = text.partition(":")
    norm = norm.strip()
    if not sep or norm not in ("l2", "linf"):
        raise BenchError(
            f"--threat {text!r}: write NORM:EPS[,EPS...] with NORM l2 or linf, e.g. l2:0.5,1 or linf:4/255"
        )
    return norm, parse_eps(radii, f"--threat {text}")


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


def _out_dir(text: str) -> Path:
    """``--out``: a folder; an empty value would silently write into the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a run folder, e.g. --out results/my-run (or leave --out out)")
    return Path(text).expanduser()


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are the project's one line (``error: ...``, exit 2), not a usage block."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise BenchError(f"{message} (see `{self.prog} --help`)")


def build_run_parser(prog: str = "run_bench.py") -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description=(
            "Benchmark perceptual similarity metrics on 2AFC data (and on retrieval and kNN: --dataset "
            "sample-retrieval, sample-knn): natural score, attacks on the reference image (the query), certified "
            "scores. With no options: the bundled metrics on the bundled 'sample' test split, offline."
        ),
        epilog=(
            "other commands:\n"
            "  list                  metrics (with weight availability), datasets, attacks, presets\n"
            "  fetch night|METRIC    download NIGHT (or a subset: --n) or a metric's weights\n"
            "  report DIR...         one table (md, csv, tex) with 95% intervals; --compare A,B: paired test\n"
            "  plot DIR              robustness curves, certified curves, histograms, radii (PNG, PDF)\n"
            "  compare DIR           each cell beside its published value (bench/report/published.json)\n"
            "  leaderboard DIR...    a static leaderboard site (--out SITE)\n"
            "  entry DIR             a run's own leaderboard entry for one metric (--metric NAME)\n"
            "  validate ENTRY        check an entry: schema, files, cells recomputed, metric re-scored\n"
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
    what.add_argument(
        "--preset",
        default=None,
        help="a named protocol (bundled, ensemble, paper, paper-ensemble, paper-zero-shot, robust, smoothing, stlpips; see `list`); other options override it (default: bundled, unless --dataset is given)",
    )
    what.add_argument(
        "--metrics",
        type=_names,
        default=None,
        help="comma-separated metric names (default: the default run's five bundled metrics; see `list`)",
    )
    what.add_argument(
        "--dataset",
        default="sample",
        help="NAME[:ROOT]: sample (default), night:ROOT, bapps:ROOT[/SUBSET]; retrieval and kNN: sample-retrieval, "
        "sample-knn, retrieval:ROOT, knn:ROOT (see `list`); naming it (even sample) leaves out the bundled preset's "
        "--n 100 and --steps 20",
    )
    what.add_argument("--split", default=None, help="dataset split (default: the dataset's test split)")
    what.add_argument(
        "--every",
        type=_positive_int("--every"),
        default=1,
        metavar="K",
        help="use every K-th triplet or query (after --n, so of the default run's first 100): a subsample spread over the split, for expensive evaluations (default: 1, all)",
    )
    what.add_argument(
        "--n",
        "--num-triplets",
        dest="n",
        type=_positive_int("--n"),
        default=None,
        help="use only the first N triplets or queries (default run: 100; under torchrun write --num-triplets: torchrun takes --n for its own --nnodes)",
    )

    how = parser.add_argument_group("evaluations")
    how.add_argument(
        "--evaluations",
        type=_names,
        default=None,
        help="comma-separated evaluations, e.g. natural,certified,apgd,direct (see `list`); replaces --attacks/--certify/--histogram",
    )
    how.add_argument(
        "--set",
        dest="set_options",
        action="append",
        default=[],
        metavar="NAME.OPTION=VALUE",
        help="repeatable: an option of an evaluation, e.g. --set apgd.steps=50 --set certified.eps=36/255,72/255 (see `list`)",
    )
    how.add_argument(
        "--attacks",
        type=_names,
        default=["apgd"],
        help="comma-separated attacks on the reference image, or none (default: apgd; see `list`)",
    )
    how.add_argument("--norm", choices=("l2", "linf"), default=None, help="threat model of the attacks (default: l2)")
    how.add_argument(
        "--eps",
        default=None,
        help="attack radii, comma-separated, fractions allowed (default l2: 0.25,0.5,1,2 on sample, 0.5,1,2,3 elsewhere; linf: 2/255,4/255,8/255); also the certified radii unless --certify-eps",
    )
    how.add_argument(
        "--threat",
        action=_ReplaceDefault,
        default=None,
        metavar="NORM:EPS,...",
        help="repeatable: several threat models in one run, e.g. --threat l2:0.5,1 --threat linf:4/255 (instead of --norm/--eps)",
    )
    how.add_argument(
        "--steps",
        type=_positive_int("--steps"),
        default=None,
        help="iterations of every attack and the direct attack (default: 20 in the default run, else 100; = --set NAME.steps=S for each)",
    )
    how.add_argument(
        "--restarts",
        type=_positive_int("--restarts"),
        default=None,
        help="attack restarts (default: 1; = --set NAME.restarts=R)",
    )
    how.add_argument(
        "--certify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="certified scores for metrics with a Lipschitz bound (default: on)",
    )
    how.add_argument(
        "--histogram",
        action="store_true",
        help="direct attack on each reference: histogram of d(x, x+delta) (PNG, PDF, CSV)",
    )
    how.add_argument(
        "--histogram-eps",
        default=None,
        help="l2 radius of the direct attack (default: 0.5 on sample, 1 elsewhere; = --set direct.eps=E)",
    )
    how.add_argument(
        "--perturb",
        choices=PERTURB_TARGETS,
        default="ref",
        help="which image(s) of each triplet attacks perturb and certificates cover: ref (the paper's), x0, x1, "
        "or all (the three under one norm ball: l-inf per image, l2 one joint budget) (default: ref)",
    )
    how.add_argument(
        "--verify",
        action="store_true",
        help="verification mode: attack every triplet, even those inside the certified radius of a bound the project computed, and check every certificate (also $LIPSIM_BENCH_VERIFY=1)",
    )
    how.add_argument(
        "--save-adversarial",
        action="store_true",
        help="keep every attack unit's adversarial examples (records/*.adversarial.safetensors): for transfer, "
        "the examples figure, and for anyone to re-check a score on them",
    )
    how.add_argument(
        "--certify-eps",
        default=None,
        help="certified radii (default: 36/255,72/255,108/255, the paper's; = --set certified.eps=...)",
    )

    plug = parser.add_argument_group("plugins")
    plug.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE.py",
        help="repeatable: a Python file that registers metrics, attacks or evaluations (also $LIPSIM_BENCH_PLUGINS)",
    )
    plug.add_argument(
        "--import",
        dest="import_modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="repeatable: an importable module that registers plugins",
    )

    run = parser.add_argument_group("running")
    run.add_argument(
        "--batch-size", type=_positive_int("--batch-size"), default=100, help="triplets per batch (default: 100)"
    )
    run.add_argument("--device", default=None, help="cpu, cuda or cuda:K (default: cuda when available)")
    run.add_argument(
        "--precision",
        choices=("fp32", "tf32", "bf16", "fp16"),
        default="fp32",
        help="embeddings of metrics without a Lipschitz bound (CLIP, DINO, DreamSim, ...) in TF32 / bf16 / fp16 autocast, a GPU fast path; certified metrics stay fp32 (default: fp32)",
    )
    seeding = run.add_mutually_exclusive_group()
    seeding.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: 0)")
    seeding.add_argument(
        "--seeds",
        default=None,
        metavar="S,S,...",
        help="several seeds, e.g. 0,1,2: attacks and smoothing run once per seed, the rest once (at the first); "
        "the table shows each cell's mean over seeds, seeds.md its spread and worst case",
    )
    run.add_argument("--workers", type=int, default=0, help="image-loading worker processes (default: 0)")
    run.add_argument(
        "--weights-dir",
        type=Path,
        default=None,
        help="folder with pretrained weights (sets LIPSIM_BENCH_WEIGHTS_DIR; default: the libraries' caches)",
    )
    run.add_argument(
        "--out", type=_out_dir, default=None, help="run folder (default: results/<dataset>-<split>; reruns resume)"
    )
    run.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="fetch missing data and weights first (needs network; default: on for the NIGHT presets, off otherwise)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print what the run would download and compute, and its estimated GPU time; compute nothing",
    )
    return parser


def _given(argv: Sequence[str], *options: str) -> bool:
    """Whether the user wrote one of ``options`` (not a preset's default)."""
    return any(arg.split("=")[0] in options for arg in argv)


def parse_run_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse run options; a ``--preset`` supplies defaults that explicit options override.

    Plugins are loaded first, so their metrics, attacks and evaluations can be named.
    """
    parser = build_run_parser()
    known, _ = parser.parse_known_args(argv)
    load_plugins(known.plugin, known.import_modules)
    from lipsim_bench.protocol.presets import DEFAULT_PRESET, get_preset

    preset = known.preset
    if preset is None and not _given(argv, "--dataset"):
        preset = DEFAULT_PRESET  # the bundled world's protocol; explicit options still win
        parser.set_defaults(preset=preset)
    if preset is not None:
        parser.set_defaults(**get_preset(preset).options)
    args = parser.parse_args(argv)
    args._argv = list(argv)
    return args
