"""What a NIGHT fetch needs, computed offline: the selected triplets, their chunks, and which are still missing."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from lipsim_bench.datasets.night.layout import (
    APPROX_PAIR_GB,
    FETCH_AGAIN,
    FETCH_DIR,
    FULL_ZIP,
    FULL_ZIP_GB,
    KINDS,
    N_CHUNKS,
    archive_relpath,
    chunk_done,
    night_base_url,
)
from lipsim_bench.datasets.night.table import MIN_VOTES, NIGHT_SPLITS, read_night_csv, select_split
from lipsim_bench.errors import DatasetError

_CHUNK_RE = re.compile(r"^[\w-]+$")


def check_args(split: str, n: int | None) -> None:
    """Same validation as the runner, so a plan never differs from what the benchmark reads."""
    if split not in NIGHT_SPLITS:
        raise DatasetError(f"unknown split {split!r} for dataset night; choose one of: {', '.join(NIGHT_SPLITS)}")
    if n is not None and n <= 0:
        raise DatasetError(f"--n must be a positive number of triplets, got {n}")


def selected_rows(root: Path, split: str, n: int | None) -> pd.DataFrame:
    """Exactly the triplets the benchmark evaluates: the split, then the first ``n`` in file order."""
    rows = select_split(read_night_csv(root), split)
    return rows if n is None else rows.head(n)


def _chunk_of(path: str) -> str:
    """NIGHT stores images as ``ref/NNN/yyy.png``: the folder NNN names the chunk archive."""
    chunk = PurePosixPath(path).parent.name
    if not _CHUNK_RE.match(chunk) or chunk in KINDS:
        raise DatasetError(
            f"data.csv lists image path {path!r} without a chunk folder (expected ref/NNN/yyy.png); "
            f"the file is not NIGHT's data.csv, delete it and {FETCH_AGAIN}"
        )
    return chunk


def _chunks_of(rows: pd.DataFrame) -> list[str]:
    paths: Iterable[str] = (str(p) for col in ("ref_path", "left_path", "right_path") for p in rows[col])
    return sorted({_chunk_of(p) for p in paths})


@dataclass(frozen=True)
class NightFetchPlan:
    """What a fetch would do, computed offline so the CLI can show it before downloading."""

    root: Path
    split: str
    n: int | None
    have_csv: bool
    chunks: list[str] | None
    missing_chunks: list[str] | None
    n_triplets: int | None

    def describe(self) -> list[str]:
        """Human-readable lines: what is downloaded, from where, roughly how much, and where it lands."""
        base = night_base_url()
        what = f"split {self.split}" + ("" if self.n is None else f", first {self.n} triplets")
        lines = [f"NIGHT cache: {self.root} ({what})"]
        if not self.have_csv:
            return lines + self._describe_without_csv(base)
        assert self.chunks is not None and self.missing_chunks is not None
        lines.append(
            f"data.csv present: {self.n_triplets} triplet(s) with votes >= {MIN_VOTES} selected, "
            f"in {len(self.chunks)} chunk(s): {_short_list(self.chunks)}"
        )
        if not self.missing_chunks:
            return lines + ["nothing to download: every needed chunk is already extracted"]
        gb = len(self.missing_chunks) * APPROX_PAIR_GB
        lines.append(
            f"to download: {len(self.missing_chunks)} chunk pair(s), about {gb:.2f} GB "
            f"(~{APPROX_PAIR_GB:.2f} GB per ref+distort pair = {FULL_ZIP_GB:.0f} GB / {N_CHUNKS}; exact sizes are unknown offline):"
        )
        urls = [f"{base}/{archive_relpath(k, c)}" for c in self.missing_chunks for k in KINDS]
        lines += [f"  {u}" for u in urls[:20]]
        if len(urls) > 20:
            lines.append(f"  ... and {len(urls) - 20} more ({base}/nights_chunked/{{ref,distort}}/NNN.zip)")
        return lines + _landing_lines(self.root)

    def _describe_without_csv(self, base: str) -> list[str]:
        return [
            (
                f"data.csv is not in {self.root} yet: it must be fetched first, read out of {base}/{FULL_ZIP} "
                f"with HTTP Range requests (central directory + one member, a few MB, not the {FULL_ZIP_GB:.0f} GB zip)"
            ),
            (
                "the chunks to download are known only once data.csv is there: each chunk is "
                f"{base}/nights_chunked/ref/NNN.zip + {base}/nights_chunked/distort/NNN.zip "
                f"(~{APPROX_PAIR_GB:.2f} GB per pair; all {N_CHUNKS} pairs ~{FULL_ZIP_GB:.0f} GB)"
            ),
            *_landing_lines(self.root),
        ]


def _short_list(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _landing_lines(root: Path) -> list[str]:
    line = (
        f"images land in {root}/ref/NNN/ and {root}/distort/NNN/; archives are downloaded one at a time "
        f"to {root / FETCH_DIR} and deleted after extraction (sha256s recorded in {root / FETCH_DIR / 'manifest.json'})"
    )
    return [line]


def plan_night_fetch(root: Path, split: str = "test", n: int | None = None) -> NightFetchPlan:
    """What ``fetch_night`` would download; offline, never touches the network."""
    check_args(split, n)
    root = Path(root).expanduser()
    if not (root / "data.csv").is_file():
        return NightFetchPlan(root, split, n, False, None, None, None)
    rows = selected_rows(root, split, n)
    chunks = _chunks_of(rows)
    missing = [c for c in chunks if not chunk_done(root, c)]
    return NightFetchPlan(root, split, n, True, chunks, missing, len(rows))


def night_is_complete(root: Path, split: str, n: int | None) -> bool:
    """data.csv is there and every needed chunk is done (or every needed image is simply present)."""
    plan = plan_night_fetch(root, split, n)
    if not plan.have_csv:
        return False
    if not plan.missing_chunks:
        return True
    return not missing_images(plan.root, selected_rows(plan.root, split, n))


def missing_images(root: Path, rows: pd.DataFrame) -> list[str]:
    return [
        str(p) for col in ("ref_path", "left_path", "right_path") for p in rows[col] if not (root / str(p)).is_file()
    ]
