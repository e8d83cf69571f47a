"""Where NIGHT lives: the mirror's layout, the local cache, and the fetcher's bookkeeping in ``ROOT/.fetch``.

NIGHT is published as one ~58 GB ``nights.zip`` and as 100 chunk pairs
``nights_chunked/{ref,distort}/NNN.zip``. A chunk archive is marked done (``ROOT/.fetch/done/KIND-NNN``)
only after its full extraction.
"""

from __future__ import annotations

import os
from pathlib import Path

from lipsim_bench.errors import DatasetError
from lipsim_bench.locations import DATA_ENV as DATA_DIR_ENV  # noqa: F401  (the variable default_night_root follows)
from lipsim_bench.locations import data_root

NIGHT_BASE_URL_ENV = "LIPSIM_BENCH_NIGHT_URL"
DEFAULT_NIGHT_BASE_URL = "https://data.csail.mit.edu/nights"
FULL_ZIP = "nights.zip"
KINDS = ("ref", "distort")
N_CHUNKS = 100
FULL_ZIP_GB = 58.0
APPROX_PAIR_GB = FULL_ZIP_GB / N_CHUNKS  # ref + distort archives of one chunk, when sizes are unknown offline
FETCH_DIR = ".fetch"
#: The end of every "it went wrong, try again" message of the fetcher.
FETCH_AGAIN = "run the fetch again (`python run_bench.py fetch night` with the same --split, --n and --root)"


def default_night_root() -> Path:
    """``$LIPSIM_BENCH_DATA/nights`` when set (shared data disks), else ``nights`` in the cache (see lipsim_bench.locations)."""
    return data_root() / "nights"


def night_base_url() -> str:
    """The mirror to fetch from; an env var so tests (and mirrors) can point elsewhere."""
    url = os.environ.get(NIGHT_BASE_URL_ENV, "").strip() or DEFAULT_NIGHT_BASE_URL
    if not url.startswith(("http://", "https://")):
        raise DatasetError(
            f"{NIGHT_BASE_URL_ENV}={url!r} is not an http(s) URL; set it to e.g. {DEFAULT_NIGHT_BASE_URL}"
        )
    return url.rstrip("/")


def archive_relpath(kind: str, chunk: str) -> str:
    """Path of one chunk archive relative to the base URL (also its key in pins and the manifest)."""
    return f"nights_chunked/{kind}/{chunk}.zip"


def fetch_dir(root: Path) -> Path:
    return root / FETCH_DIR


def done_marker(root: Path, kind: str, chunk: str) -> Path:
    return fetch_dir(root) / "done" / f"{kind}-{chunk}"


def chunk_done(root: Path, chunk: str) -> bool:
    return all(done_marker(root, kind, chunk).is_file() for kind in KINDS)
