"""``run_bench.py leaderboard DIR... --out SITE``: a static leaderboard site from the records of run folders.

The site (bench/site/) shows a sortable table per protocol, a page per metric with its curves and every cell's
provenance, and the published ("reported") numbers apart from the re-evaluated ones; see docs/leaderboard.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from lipsim_bench.run_args import OneLineParser


def main(argv: Sequence[str]) -> int:
    from lipsim_bench.site.render import build_site
    from lipsim_bench.site.reported import default_published
    from lipsim_bench.submission.leaderboard import is_entry, read_entries

    parser = OneLineParser(
        prog="run_bench.py leaderboard",
        description="A static leaderboard site (open SITE/index.html in a browser, no server) from run folders.",
    )
    parser.add_argument(
        "runs",
        nargs="+",
        type=Path,
        metavar="DIR_OR_ENTRY",
        help="run folders (each with a records/ folder) and entry files (ENTRY.json, written by `run_bench.py entry`; "
        "a 'reported' entry goes to the reported section)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("leaderboard"),
        help="the site's folder: new, empty, or an earlier site (rebuilt) (default: ./leaderboard)",
    )
    published = parser.add_mutually_exclusive_group()
    published.add_argument(
        "--published",
        type=Path,
        default=None,
        help="published cells to show apart as 'reported' (default: the bundled bench/report/published.json)",
    )
    published.add_argument("--no-published", action="store_true", help="show re-evaluated cells only")
    args = parser.parse_args(argv)
    bundled = default_published()
    source = None if args.no_published else args.published or (bundled if bundled.is_file() else None)
    entries = [p for p in args.runs if is_entry(p)]
    submitted = read_entries(entries)
    for line in submitted.notes:  # an entry that fails its checks: left out, said here and under the index
        print(f"warning: {line}", file=sys.stderr)
    files = build_site([p for p in args.runs if not is_entry(p)], args.out, source, submitted)
    pages = sum(1 for f in files if f.parent.name == "metrics")
    images = sum(1 for f in files if f.suffix == ".png")
    print(
        f"wrote {args.out}/: index.html, {pages} metric page(s), {images} figure(s)"
        + (f"; reported cells from {source}" if source else "; no published cells")
        + (f"; {len(entries) - len(submitted.notes)} of {len(entries)} entr(y/ies) shown" if entries else "")
        + f"\nopen {args.out / 'index.html'} in a browser"
    )
    return 0
