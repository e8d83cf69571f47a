"""Command-line options -> a :class:`~lipsim_bench.run.spec.RunSpec`, validated whole before any work.

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
from typing import Any

from lipsim_bench.datasets import parse_dataset_arg
from lipsim_bench.devices import resolve_device
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import get_evaluation
from lipsim_bench.evaluations.options import coerce, option_fields, parse_set
from lipsim_bench.locations import set_user_weights_dir
from lipsim_bench.metrics import default_metrics, get_metric_spec
from lipsim_bench.plugins import load_plugins
from lipsim_bench.run.spec import RunSpec, check_out_dir, check_spec, parse_eps  # noqa: F401  (check_out_dir: public)


def parse_threat(text: str) -> tuple[str, list[float]]:
    """``NORM:EPS[,EPS...]`` as in ``l2:0.5,1,2,3`` or ``linf:4/255``."""
    norm, sep, radii = text.partition(":")
    norm = norm.strip()
    if not sep or norm not in ("l2", "linf"):
        raise BenchError(f"--threat {text!r}: write NORM:EPS[,EPS...] with NORM l2 or linf, e.g. l2:0.5,1 or linf:4/255")
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
    what.add_argument("--preset", default=None, help="a named protocol (paper, paper-zero-shot, robust, smoothing; see `list`); other options override it")
    what.add_argument("--metrics", type=_names, default=None, help="comma-separated metric names (default: the bundled ones; see `list`)")
    what.add_argument("--dataset", default="sample", help="NAME[:ROOT]: sample (default), night:ROOT, bapps:ROOT[/SUBSET]")
    what.add_argument("--split", default=None, help="dataset split (default: the dataset's test split)")
    what.add_argument("--every", type=_positive_int("--every"), default=1, metavar="K", help="use every K-th triplet (after --n): a subsample spread over the split, for expensive evaluations (default: 1, all)")
    what.add_argument("--n", "--num-triplets", dest="n", type=_positive_int("--n"), default=None, help="use only the first N triplets (under torchrun write --num-triplets: torchrun takes --n for its own --nnodes)")

    how = parser.add_argument_group("evaluations")
    how.add_argument("--evaluations", type=_names, default=None, help="comma-separated evaluations, e.g. natural,certified,apgd,direct (see `list`); replaces --attacks/--certify/--histogram")
    how.add_argument("--set", dest="set_options", action="append", default=[], metavar="NAME.OPTION=VALUE", help="repeatable: an option of an evaluation, e.g. --set apgd.steps=50 --set certified.eps=36/255,72/255 (see `list`)")
    how.add_argument("--attacks", type=_names, default=["apgd"], help="comma-separated attacks on the reference image, or none (default: apgd; see `list`)")
    how.add_argument("--norm", choices=("l2", "linf"), default=None, help="threat model of the attacks (default: l2)")
    how.add_argument("--eps", default=None, help="attack radii, comma-separated, fractions allowed (default l2: 0.25,0.5,1,2 on sample, 0.5,1,2,3 elsewhere; linf: 2/255,4/255,8/255); also the certified radii unless --certify-eps")
    how.add_argument("--threat", action=_ReplaceDefault, default=None, metavar="NORM:EPS,...", help="repeatable: several threat models in one run, e.g. --threat l2:0.5,1 --threat linf:4/255 (instead of --norm/--eps)")
    how.add_argument("--steps", type=_positive_int("--steps"), default=None, help="iterations of every attack and the direct attack (default: 100; = --set NAME.steps=S for each)")
    how.add_argument("--restarts", type=_positive_int("--restarts"), default=None, help="attack restarts (default: 1; = --set NAME.restarts=R)")
    how.add_argument("--certify", action=argparse.BooleanOptionalAction, default=True, help="certified scores for metrics with a Lipschitz bound (default: on)")
    how.add_argument("--histogram", action="store_true", help="direct attack on each reference: histogram of d(x, x+delta) (PNG, PDF, CSV)")
    how.add_argument("--histogram-eps", default=None, help="l2 radius of the direct attack (default: 0.5 on sample, 1 elsewhere; = --set direct.eps=E)")
    how.add_argument("--verify", action="store_true", help="verification mode: attack every triplet, even those inside the certified radius of a bound the project computed, and check every certificate (also $LIPSIM_BENCH_VERIFY=1)")
    how.add_argument("--certify-eps", default=None, help="certified radii (default: 36/255,72/255,108/255, the paper's; = --set certified.eps=...)")

    plug = parser.add_argument_group("plugins")
    plug.add_argument("--plugin", action="append", default=[], metavar="FILE.py", help="repeatable: a Python file that registers metrics, attacks or evaluations (also $LIPSIM_BENCH_PLUGINS)")
    plug.add_argument("--import", dest="import_modules", action="append", default=[], metavar="MODULE", help="repeatable: an importable module that registers plugins")

    run = parser.add_argument_group("running")
    run.add_argument("--batch-size", type=_positive_int("--batch-size"), default=100, help="triplets per batch (default: 100)")
    run.add_argument("--device", default=None, help="cpu, cuda or cuda:K (default: cuda when available)")
    run.add_argument("--precision", choices=("fp32", "tf32", "bf16", "fp16"), default="fp32", help="embeddings of metrics without a Lipschitz bound (CLIP, DINO, DreamSim, ...) in TF32 / bf16 / fp16 autocast, a GPU fast path; certified metrics stay fp32 (default: fp32)")
    run.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: 0)")
    run.add_argument("--workers", type=int, default=0, help="image-loading worker processes (default: 0)")
    run.add_argument("--weights-dir", type=Path, default=None, help="folder with pretrained weights (sets LIPSIM_BENCH_WEIGHTS_DIR; default: the libraries' caches)")
    run.add_argument("--out", type=_out_dir, default=None, help="run folder (default: results/<dataset>-<split>; reruns resume)")
    run.add_argument("--download", action=argparse.BooleanOptionalAction, default=False, help="fetch missing data and weights first (needs network; default: on for presets, off otherwise)")
    run.add_argument("--dry-run", action="store_true", help="print what the run would download and compute, and its estimated GPU time; compute nothing")
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
    if known.preset is not None:
        from lipsim_bench.protocol.presets import get_preset

        parser.set_defaults(**get_preset(known.preset).options)
    args = parser.parse_args(argv)
    args._argv = list(argv)
    return args


def _evaluation_names(args: argparse.Namespace) -> list[str]:
    """``--evaluations``, or the shorthand: natural, certified (``--certify``), the attacks, direct (``--histogram``)."""
    argv = getattr(args, "_argv", [])
    if args.evaluations is not None:
        if _given(argv, "--attacks", "--certify", "--no-certify", "--histogram"):
            if not _given(argv, "--evaluations"):
                raise BenchError(f"--preset {args.preset} sets --evaluations {','.join(args.evaluations)}; change them with --evaluations, "
                                 "not --attacks/--certify/--histogram")
            raise BenchError("give either --evaluations or --attacks/--certify/--histogram, not both")
        return list(args.evaluations)
    attacks = [] if args.attacks == ["none"] else list(args.attacks)
    from lipsim_bench.attacks import ATTACKS

    for name in attacks:
        ATTACKS.get(name)  # an unknown attack fails here, with the closest names
    return ["natural"] + (["certified"] if args.certify else []) + attacks + (["direct"] if args.histogram else [])


def _shorthands(args: argparse.Namespace, evaluations: list[str]) -> dict[tuple[str, str], tuple[str, Any]]:
    """(evaluation, option) -> (the flag the user wrote, its value): what a ``--set`` must agree with.

    A preset's values are not here: ``--set`` overrides a preset by design.
    """
    argv = getattr(args, "_argv", [])
    given: dict[tuple[str, str], tuple[str, Any]] = {}
    for flag, option, value in (("--steps", "steps", args.steps), ("--restarts", "restarts", args.restarts)):
        if value is not None and _given(argv, flag):
            for name in evaluations:
                if option in option_fields(get_evaluation(name).Options):
                    given[name, option] = (f"{flag} {value}", value)
    if args.certify_eps is not None and _given(argv, "--certify-eps") and "certified" in evaluations:
        given["certified", "eps"] = (f"--certify-eps {args.certify_eps}", tuple(parse_eps(args.certify_eps, "--certify-eps")))
    if args.histogram_eps is not None and _given(argv, "--histogram-eps") and "direct" in evaluations:
        given["direct", "eps"] = (f"--histogram-eps {args.histogram_eps}", parse_eps(args.histogram_eps, "--histogram-eps")[0])
    return given


def _check_agrees(shorthand: tuple[str, Any], name: str, option: str, text: str) -> None:
    """``--steps 20`` with ``--set apgd.steps=100``: two values for one option is a contradiction, refused."""
    flag, value = shorthand
    kind = option_fields(get_evaluation(name).Options)[option]
    try:
        same = coerce(kind, text, f"{name}.{option}") == coerce(kind, value, f"{name}.{option}")
    except BenchError:
        return  # a bad --set value: its own error follows when the options are built
    if not same:
        raise BenchError(f"{flag} and --set {name}.{option}={text} disagree; give {name}.{option} once (drop one of the two)")


def _options(args: argparse.Namespace, evaluations: list[str]) -> dict[str, dict[str, Any]]:
    """Per-evaluation option values: the shorthand flags first, then ``--set`` (which must agree with them)."""
    argv = getattr(args, "_argv", [])
    if _given(argv, "--histogram-eps") and "direct" not in evaluations:
        raise BenchError("--histogram-eps is given but the direct attack does not run; add --histogram (or --evaluations ...,direct)")
    if _given(argv, "--certify-eps") and "certified" not in evaluations:
        raise BenchError("--certify-eps is given but certificates do not run; drop --no-certify (or add certified to --evaluations)")
    options: dict[str, dict[str, Any]] = {}
    shorthand = {"steps": args.steps, "restarts": args.restarts}
    preset = getattr(args, "evaluation_options", None) or {}  # a preset's; the run's own flags and --set win
    for name in evaluations:
        fields = option_fields(get_evaluation(name).Options)
        options[name] = {**preset.get(name, {}), **{k: v for k, v in shorthand.items() if v is not None and k in fields}}
    if args.certify_eps is not None and "certified" in options:
        options["certified"]["eps"] = parse_eps(args.certify_eps, "--certify-eps")
    elif args.eps is not None and (args.norm or "l2") == "l2" and "certified" in options:
        options["certified"]["eps"] = parse_eps(args.eps)  # --eps sets both, --certify-eps only the certificates
    if args.histogram_eps is not None and "direct" in options:
        options["direct"]["eps"] = parse_eps(args.histogram_eps, "--histogram-eps")[0]
    given: dict[tuple[str, str], str] = {}
    shorthands = _shorthands(args, evaluations)
    for text in args.set_options:
        name, option, value = parse_set(text)
        if name not in options:
            raise BenchError(f"--set {text}: {name!r} is not among this run's evaluations ({', '.join(evaluations)})")
        if (name, option) in shorthands:
            _check_agrees(shorthands[name, option], name, option, value)
        if (name, option) in given and given[name, option] != value:
            raise BenchError(f"--set {name}.{option} is given twice with different values ({given[name, option]} and {value}); give it once")
        given[name, option] = value
        options[name][option] = value
    return {name: values for name, values in options.items() if values}


def _threats(args: argparse.Namespace) -> list[tuple[str, list[float]]] | None:
    if args.threat and (args.eps is not None or args.norm is not None) and getattr(args, "_threat_given", False):
        raise BenchError("give either --threat or --norm/--eps, not both")
    if args.threat and args.eps is None and args.norm is None:  # explicit --norm/--eps replace a preset's threats
        return [parse_threat(t) for t in args.threat]
    if args.eps is not None or args.norm is not None:
        norm = args.norm or "l2"
        from lipsim_bench.run.spec import default_attack_eps

        family, _ = parse_dataset_arg(args.dataset)
        return [(norm, parse_eps(args.eps) if args.eps is not None else list(default_attack_eps(family.name, norm)))]
    return None


def _warn_unused(args: argparse.Namespace, evaluations: list[str]) -> None:
    """A flag the user wrote that no evaluation of the run reads: one warning line, not silence."""
    import sys

    argv = getattr(args, "_argv", [])
    used = {option for name in evaluations for option in option_fields(get_evaluation(name).Options)}
    radii = any(get_evaluation(name).per_threat for name in evaluations) or "certified" in evaluations
    for flag, needs in (("--steps", "steps" in used), ("--restarts", "restarts" in used),
                        ("--eps", radii), ("--norm", radii), ("--threat", radii)):
        if _given(argv, flag) and not needs:
            print(f"warning: {flag} is given but no evaluation of this run ({', '.join(evaluations)}) uses it; it changes nothing",
                  file=sys.stderr)


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The run spec of parsed options, resolved once here so that a bad request fails before any work."""
    if args.weights_dir is not None:
        if not args.weights_dir.is_dir():
            raise BenchError(f"--weights-dir {args.weights_dir} is not a folder")
        set_user_weights_dir(args.weights_dir)
    metrics = args.metrics if args.metrics is not None else default_metrics()
    if not metrics:
        raise BenchError("--metrics is empty; name at least one metric (see `python run_bench.py list`)")
    for name in metrics:
        get_metric_spec(name)  # unknown names fail here, before the evaluations' options are read
    parse_dataset_arg(args.dataset)
    if args.workers < 0:
        raise BenchError(f"--workers must be >= 0, got {args.workers}")
    evaluations = _evaluation_names(args)
    spec = RunSpec(
        metrics=metrics,
        dataset=args.dataset,
        split=args.split,
        n=args.n,
        every=args.every,
        evaluations=evaluations,
        options=_options(args, evaluations),
        threats=_threats(args),
        batch_size=args.batch_size,
        device=str(resolve_device(args.device)),
        seed=args.seed,
        out=args.out,
        workers=args.workers,
        download=args.download,
        verify=args.verify,
        precision=args.precision,
    )
    check_spec(spec)  # every value checked now, as for the Python API
    _warn_unused(args, evaluations)  # after the checks: a bad request is one error line, nothing else
    return spec


config_from_args = spec_from_args  # the name earlier versions used
