"""Command line: ``run_bench.py [run] [options]``, ``list``, ``fetch``, ``report``, ``plot``, ``train``.

Bad input ends in one line on stderr naming the thing and the fix, and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from lipsim_bench.errors import BenchError
from lipsim_bench.run_args import OneLineParser, _positive_int, parse_run_args
from lipsim_bench.run_request import spec_from_args


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's or `kill`'s), ended the way Ctrl-C ends a run: finished units are kept."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while a run is in progress (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class LineTracker:
    """Wraps stderr and remembers whether the cursor is at the start of a line (a bar leaves it mid-line)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.at_line_start = True

    def write(self, text: str) -> int:
        if text:
            self.at_line_start = text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def print_error(message: str) -> None:
    """One line on stderr, always starting on a fresh line even after a progress bar."""
    if isinstance(sys.stderr, LineTracker) and not sys.stderr.at_line_start:
        sys.stderr.write("\n")
    print(message, file=sys.stderr)


RERUN = "then rerun the same command (finished units are kept)"


def describe_os_error(exc: OSError, then: str = RERUN) -> str:
    """A machine fault (disk full, read-only, a file where a folder should be) in one line, with the fix."""
    where = f"{exc.filename}: " if exc.filename else ""
    fix = {
        errno.ENOSPC: "free disk space",
        errno.EACCES: "fix the permissions or choose another folder",
        errno.EROFS: "choose a writable folder",
        errno.ENOTDIR: "a file is in the way of a folder: move it",
        errno.EEXIST: "a file is in the way of a folder: move it",
    }.get(exc.errno or 0, "fix that")
    return f"{where}{exc.strerror or exc}; {fix}, {then}"


def cmd_run(argv: Sequence[str]) -> int:
    args = parse_run_args(argv)
    spec = spec_from_args(args)
    if args.dry_run:
        from lipsim_bench.protocol.dryrun import print_dry_run

        print_dry_run(spec, preset=args.preset)
        return 0
    from lipsim_bench.api import run_and_report
    from lipsim_bench.run.distributed import init_shard

    shard = init_shard(spec.device)
    try:
        started = time.perf_counter()
        with sigterm_as_interrupt():
            result = run_and_report(spec, shard)
    finally:
        shard.close()
    if result is not None:
        print(result.markdown)
        print(f"\n{result.reuse_summary()}")
        files = ", ".join([*getattr(result, "files", []), "records/", "run.log"])
        print(f"wrote {result.out_dir}/ ({files}) in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_list(argv: Sequence[str]) -> int:
    parser = OneLineParser(prog="run_bench.py list", description="List metrics, datasets, evaluations and presets.")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE.py",
        help="load a plugin file first (also $LIPSIM_BENCH_PLUGINS)",
    )
    parser.add_argument(
        "--import",
        dest="import_modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a plugin module first",
    )
    args = parser.parse_args(argv)
    from lipsim_bench.listing import listing
    from lipsim_bench.plugins import load_plugins

    load_plugins(args.plugin, args.import_modules)

    print(listing())
    return 0


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def cmd_report(argv: Sequence[str]) -> int:
    from lipsim_bench.report.outputs import report_runs
    from lipsim_bench.run_args import _names

    parser = OneLineParser(
        prog="run_bench.py report",
        description="One table (scores.csv/.md/.tex) from the records of one or more run folders.",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with a records/ folder)")
    parser.add_argument(
        "--metrics", type=_names, default=None, help="only these metrics (comma-separated, the names the run used)"
    )
    parser.add_argument(
        "--evaluations", type=_names, default=None, help="only these evaluations (comma-separated, e.g. natural,apgd)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the tables (default: the run folder when one is given "
        "and nothing is filtered, else ./report)",
    )

    def pair_of_names(text: str) -> tuple[str, str]:  # --compare A,B: exactly two metric names
        names = [t.strip() for t in text.split(",")]
        if len(names) != 2 or not all(names):
            raise argparse.ArgumentTypeError(f"--compare takes two metric names as A,B, got {text!r}")
        return names[0], names[1]

    parser.add_argument(
        "--compare",
        type=pair_of_names,
        default=None,
        metavar="A,B",
        help="also the paired difference A - B on the triplets both metrics were scored on, per cell, with its 95%% "
        "interval and an exact paired test (printed, and written as compare_A_B.md/.csv)",
    )
    args = parser.parse_args(argv)
    filtered = args.metrics is not None or args.evaluations is not None
    out = args.out or (args.runs[0] if len(args.runs) == 1 and not filtered else Path("report"))
    own = len(args.runs) == 1 and _same_folder(out, args.runs[0]) and not filtered
    if not own and (any(_same_folder(out, run) for run in args.runs) or (out / "records").is_dir()):
        raise BenchError(
            f"--out {out} is a run folder: its tables show every cell of its own records; write a "
            f"{'filtered' if filtered else 'merged'} report elsewhere (e.g. --out report)"
        )
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} is a file; give a folder")
    try:
        document = report_runs(list(args.runs), out, args.metrics, args.evaluations, args.compare)
    except OSError as exc:  # the records are read-only input: nothing of a run is at stake
        raise BenchError(describe_os_error(exc, "then rerun the report (or give another --out)")) from None
    print(document.markdown)
    if document.comparison:
        print(f"\n{document.comparison}")
    print(f"\nwrote {out}/: {', '.join(document.files)}" if document.files else f"\nwrote nothing to {out}/")
    return 0


def _count(option: str) -> Callable[[str], int]:
    """A whole number >= 0 (``plot --examples 0``: no examples figure)."""

    def parse(text: str) -> int:
        if not text.strip().isdigit():
            raise argparse.ArgumentTypeError(f"{option} takes a whole number >= 0, got {text!r}")
        return int(text)

    return parse


def cmd_plot(argv: Sequence[str]) -> int:
    from lipsim_bench.report.plot_data import listed_names
    from lipsim_bench.report.plots import plot_run

    parser = OneLineParser(
        prog="run_bench.py plot",
        description="Figures (PNG and PDF) from a run folder's scores.csv, triplets.csv and histogram.csv.",
    )
    parser.add_argument("run", type=Path, help="a run folder")
    parser.add_argument("--out", type=Path, default=None, help="where to write the figures (default: RUN/plots)")
    parser.add_argument(
        "--examples",
        type=_count("--examples"),
        default=3,
        help="triplets in examples.png, the adversarial examples of a run kept with --save-adversarial "
        "(default: 3; 0: no such figure)",
    )
    parser.add_argument(
        "--eps",
        default=None,
        help="attack radius of examples.png, e.g. 0.5 or 4/255 (default: where the metrics disagree on most triplets)",
    )
    parser.add_argument("--attack", default=None, help="attack of examples.png (default: the one with most examples)")
    parser.add_argument(
        "--metrics", default=None, help="draw only these metrics, e.g. pixel-l2,lipsim-tiny (default: all the run has)"
    )
    parser.add_argument(
        "--evaluations",
        default=None,
        help="draw only these evaluations, e.g. certified,fmn (natural, every figure's baseline, is always kept; "
        "direct: the histograms)",
    )
    parser.add_argument(
        "--title", default=None, help="a headline above every figure's own title (attack, dataset and n stay)"
    )
    args = parser.parse_args(argv)
    if not any((args.run / name).is_file() for name in ("scores.csv", "triplets.csv", "histogram.csv")):
        hint = (
            f"`run_bench.py report {args.run}` writes them from its records"
            if (args.run / "records").is_dir()
            else "run the benchmark first"
        )
        raise BenchError(f"{args.run} has no scores.csv, triplets.csv or histogram.csv to plot; {hint}")
    import pandas as pd

    from lipsim_bench.report.examples import ExampleOptions
    from lipsim_bench.run.spec import parse_eps

    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise BenchError(f"--out {args.out} is a file; give a folder for the figures")
    eps = parse_eps(args.eps, "--eps") if args.eps is not None else None
    if eps is not None and len(eps) != 1:
        raise BenchError("--eps of plot takes one radius (the examples figure shows one), e.g. --eps 0.5")
    examples, notes = ExampleOptions(args.examples, eps[0] if eps else None, args.attack), []
    try:
        with warnings.catch_warnings():  # numpy's and matplotlib's advice on odd numbers: check_frame names the cause
            warnings.simplefilter("ignore")
            paths = plot_run(
                args.run,
                args.out,
                examples=examples,
                notes=notes,
                metrics=listed_names(args.metrics, "--metrics"),
                evaluations=listed_names(args.evaluations, "--evaluations"),
                title=args.title,
            )
    except OSError as exc:
        raise BenchError(describe_os_error(exc, "then rerun the plot (or give another --out)")) from None
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        UnicodeDecodeError,
    ) as exc:
        first = " ".join(str(exc).split()) or type(exc).__name__
        raise BenchError(
            f"cannot plot {args.run}: its CSVs are damaged or inconsistent ({first[:300]}); "
            f"rebuild them with `run_bench.py report {args.run}`"
        ) from None
    print("\n".join(notes + [f"wrote {p}" for p in paths]) or "nothing to plot")
    return 0


def cmd_fetch(argv: Sequence[str]) -> int:
    from lipsim_bench.run.fetch import ensure_weights

    parser = OneLineParser(
        prog="run_bench.py fetch",
        description="Download NIGHT (all of a split, or the part --n triplets need) or metrics' weights. Needs network.",
    )
    parser.add_argument("what", nargs="+", help="night, or metric names (see `list`)")
    parser.add_argument("--split", default="test", help="NIGHT split to fetch (default: test)")
    parser.add_argument("--n", type=_positive_int("--n"), default=None, help="only the first N triplets of the split")
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="where NIGHT goes (default: $LIPSIM_BENCH_DATA/nights or ~/.cache/lipsim_bench/nights)",
    )
    parser.add_argument(
        "--pins",
        type=Path,
        default=None,
        help="JSON of sha256 pins {archive path: sha256} (e.g. another machine's ROOT/.fetch/manifest.json)",
    )
    args = parser.parse_args(argv)
    for item in args.what:
        if item == "night":
            from lipsim_bench.datasets.night import fetch_night

            fetch_night(args.root, args.split, args.n, pins=args.pins)
            print(f"night ({args.split}{f', first {args.n}' if args.n else ''}): done")
        else:
            ensure_weights(item)
            print(f"{item}: weights here")
    return 0


def cmd_train(argv: Sequence[str]) -> int:
    from lipsim_bench.training import students  # noqa: F401  (registers the trainable architectures)
    from lipsim_bench.training.cli import cmd_train as train

    return train(argv)


def _command(module: str) -> Callable[[Sequence[str]], int]:
    """A command whose parser and work live in ``lipsim_bench.commands.<module>`` (imported when called)."""

    def run(argv: Sequence[str]) -> int:
        import importlib

        return importlib.import_module(f"lipsim_bench.commands.{module}").main(argv)

    return run


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "run": cmd_run,
    "list": cmd_list,
    "train": cmd_train,
    "report": cmd_report,
    "plot": cmd_plot,
    "fetch": cmd_fetch,
    "compare": _command("compare"),
    "leaderboard": _command("leaderboard"),
    "entry": _command("entry"),
    "validate": _command("validate"),
}


def worker_message(exc: BaseException) -> str:
    """The error's own line: torch re-raises a DataLoader worker's error with the worker's traceback in it."""
    text = str(exc)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``run_bench.py`` and the ``lipsim-bench`` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    stderr = sys.stderr
    sys.stderr = LineTracker(stderr)
    try:
        return COMMANDS[command](argv)
    except BenchError as exc:
        print_error(f"error: {worker_message(exc)}")
        return 2
    except OSError as exc:
        print_error(f"error: {describe_os_error(exc)}")
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print_error(f"{what}: finished units are saved under the run folder; rerun the same command to resume")
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        sys.stderr = stderr
