"""``run_bench.py compare RUN_DIR``: a run's cells beside the published ones (bench/report/published.json).

Prints and writes ``compare.md`` and ``compare.csv``: our score with its 95% interval, the published score, the
difference, whether the published value lies inside our interval, and the protocol differences that could
explain a gap. A run with random weights marks every cell not comparable. A run none of whose cells has a
published counterpart says so in one line and exits 0 (nothing is wrong with it; it writes nothing).
See docs/calibration.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lipsim_bench.run_args import OneLineParser


def main(argv: Sequence[str]) -> int:
    from lipsim_bench.errors import BenchError
    from lipsim_bench.report.calibration import load_published
    from lipsim_bench.report.calibration_compare import compare, render_markdown
    from lipsim_bench.report.collect import read_records

    parser = OneLineParser(
        prog="run_bench.py compare",
        description="A run's scores beside published ones: difference, interval, protocol differences.",
    )
    parser.add_argument("run", type=Path, help="a run folder (with a records/ folder)")
    parser.add_argument(
        "--published",
        type=Path,
        default=None,
        help="a JSON file of published cells (default: the bundled bench/report/published.json)",
    )
    parser.add_argument("--out", type=Path, default=None, help="where compare.md and compare.csv go (default: RUN)")
    args = parser.parse_args(argv)
    if not args.run.is_dir():
        raise BenchError(f"{args.run} is not a folder; give a run folder (e.g. results/night-test)")
    published = load_published(args.published)
    collected = read_records([args.run])
    comparison = compare(collected, published)
    if not len(comparison.rows):
        datasets = ", ".join(sorted(set(collected.scores["dataset"].astype(str)))) or "no scores"
        print(
            f"no cell of {args.run} ({datasets}) has a published counterpart in {published.path}; "
            "nothing to compare (see docs/calibration.md for the published cells)"
        )
        return 0
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    text = render_markdown(comparison, published, str(args.run))
    (out / "compare.md").write_text(text)
    comparison.rows.to_csv(out / "compare.csv", index=False)
    print(text, end="")
    print(f"wrote {out / 'compare.md'} and {out / 'compare.csv'}")
    return 0
