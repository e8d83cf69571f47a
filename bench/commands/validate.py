"""``run_bench.py validate ENTRY``: check a leaderboard entry, print a verdict per check."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from lipsim_bench.run_args import OneLineParser
from lipsim_bench.submission.validate import Options, validate


def _count(text: str) -> int | None:
    """``all`` or a positive count."""
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive count or 'all'")
    return value


def parser() -> OneLineParser:
    p = OneLineParser(
        prog="run_bench.py validate",
        description=(
            "Check a leaderboard entry (docs/submissions.md): 1. the schema; 2. every file it names exists "
            "with its sha256 and every record passes the project's checks; 3. a seeded sample of its cells "
            "recomputed from the records' per-triplet rows; 4. where it holds adversarial inputs, the metric "
            "rebuilt and re-scored on them. Exit 0: every check holds; 1: a claim does not hold; 2: the entry "
            "cannot be read or breaks the schema, or a check cannot run here."
        ),
    )
    p.add_argument("entry", type=Path, metavar="ENTRY", help="the entry JSON (paths in it are relative to it)")
    p.add_argument("--cells", type=_count, default=50, help="cells to recompute, or 'all' (default 50)")
    p.add_argument("--inputs", type=_count, default=64, help="adversarial inputs to re-score, or 'all' (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of both samples (default 0)")
    p.add_argument("--dataset", help="NAME:ROOT of the run's data when it is not where the records say")
    p.add_argument("--device", default="cpu", help="device of the re-scoring (default cpu)")
    p.add_argument("--no-rescore", action="store_true", help="skip check 4 (no metric is built)")
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    options = Options(args.cells, args.inputs, args.seed, not args.no_rescore, args.dataset, args.device)
    verdict = validate(args.entry, options)
    print("\n".join(verdict.lines()))
    return verdict.code
