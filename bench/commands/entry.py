"""``run_bench.py entry RUN_DIR --metric NAME``: a run's own leaderboard entry for one metric."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lipsim_bench.errors import BenchError
from lipsim_bench.run_args import OneLineParser
from lipsim_bench.submission.build import Paper, build_entry


def parser() -> OneLineParser:
    p = OneLineParser(
        prog="run_bench.py entry",
        description=(
            "Write the leaderboard entry (docs/submissions.md) of one metric of a run: its cells with the "
            "records behind them (and the attack units' adversarial inputs, when the run kept them with "
            "--save-adversarial). Written inside the run folder, the entry points at the run's records/; "
            "written elsewhere, the files are copied into records/ beside it: that folder is the submission. "
            "Check it with `run_bench.py validate ENTRY`."
        ),
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder (with records/)")
    p.add_argument("--metric", required=True, help="the metric, as the run names it (or its registry name)")
    p.add_argument("--out", type=Path, help="the entry file (default: RUN_DIR/<metric>.entry.json)")
    p.add_argument("--paper-title", help="the metric's paper")
    p.add_argument("--paper-authors", help="comma-separated authors")
    p.add_argument("--paper-year", type=int)
    p.add_argument("--paper-url")
    p.add_argument("--weights-url", help="where the weights can be downloaded (default: the registry's link)")
    p.add_argument("--no-adversarial", action="store_true", help="leave the stored adversarial inputs out")
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in args.metric)
    out = args.out or args.run_dir / f"{safe}.entry.json"
    records = (args.run_dir / "records").resolve()
    if records == out.resolve().parent or records in out.resolve().parents:
        raise BenchError(
            f"--out {out}: inside the run's records/ folder, where every .json is read as a record (and its files "
            f"would be copied into it again); write the entry beside it, e.g. --out {args.run_dir / (safe + '.entry.json')}"
        )
    authors = [a.strip() for a in (args.paper_authors or "").split(",") if a.strip()]
    paper = Paper(args.paper_title, authors, args.paper_year, args.paper_url)
    entry, skipped = build_entry(
        args.run_dir, args.metric, out, paper, weights_url=args.weights_url, adversarial=not args.no_adversarial
    )
    for line in skipped:
        print(line)
    stored = len(entry.get("adversarial", []))
    print(
        f"wrote {out}: {entry['metric']['name']}, {len(entry['cells'])} cell(s), {len(entry['records'])} record(s)"
        + (f", {stored} adversarial input file(s)" if stored else "")
        + f"; check it with `python run_bench.py validate {out}`"
    )
    return 0
