"""NIGHT (DreamSim's 2AFC dataset): the ``night`` dataset, and the fetcher that fills its cache.

One job per module, none importing a module that imports it back:

* :mod:`~lipsim_bench.datasets.night.table`: ``data.csv`` (read, validate, select a split) and
  :func:`night_like_dataset`, also used by the bundled ``sample`` set;
* :mod:`~lipsim_bench.datasets.night.layout`: the mirror's layout, the cache root, ``ROOT/.fetch`` markers;
* :mod:`~lipsim_bench.datasets.night.plan`: what a fetch needs (offline);
* :mod:`~lipsim_bench.datasets.night.http`: HTTP Range reads of the remote zip and streamed downloads;
* :mod:`~lipsim_bench.datasets.night.integrity`: sha256 pins and the download manifest;
* :mod:`~lipsim_bench.datasets.night.fetch`: :func:`fetch_night`, which downloads, checks and extracts.
"""

from __future__ import annotations

from pathlib import Path

from lipsim_bench.datasets.base import TwoAFCDataset, register_dataset
from lipsim_bench.datasets.night.fetch import fetch_chunk, fetch_night, fetch_night_csv
from lipsim_bench.datasets.night.http import HttpRangeFile, NetworkError, network_message
from lipsim_bench.datasets.night.integrity import PINNED_SHA256, load_pins
from lipsim_bench.datasets.night.layout import (
    DATA_DIR_ENV,
    DEFAULT_NIGHT_BASE_URL,
    FULL_ZIP,
    KINDS,
    N_CHUNKS,
    NIGHT_BASE_URL_ENV,
    archive_relpath,
    default_night_root,
    night_base_url,
)
from lipsim_bench.datasets.night.plan import NightFetchPlan, night_is_complete, plan_night_fetch
from lipsim_bench.datasets.night.table import (
    MIN_VOTES,
    NIGHT_IMAGE_SIZE,
    NIGHT_SPLITS,
    REQUIRED_COLUMNS,
    night_like_dataset,
    read_night_csv,
    select_split,
)
from lipsim_bench.errors import DatasetError

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_NIGHT_BASE_URL",
    "FULL_ZIP",
    "KINDS",
    "MIN_VOTES",
    "NIGHT_BASE_URL_ENV",
    "NIGHT_IMAGE_SIZE",
    "NIGHT_SPLITS",
    "N_CHUNKS",
    "PINNED_SHA256",
    "REQUIRED_COLUMNS",
    "HttpRangeFile",
    "NetworkError",
    "NightFetchPlan",
    "archive_relpath",
    "default_night_root",
    "fetch_chunk",
    "fetch_night",
    "fetch_night_csv",
    "load_pins",
    "network_message",
    "night_base_url",
    "night_dataset",
    "night_is_complete",
    "night_like_dataset",
    "plan_night_fetch",
    "read_night_csv",
    "select_split",
]


def _root(root: Path | None) -> Path:
    """An explicit ``night:ROOT``, else the cache the fetcher fills."""
    return root if root is not None else default_night_root()


def _fetch(root: Path | None, split: str, n: int | None) -> None:
    fetch_night(_root(root), split, n)


def _fetch_plan(root: Path | None, split: str, n: int | None) -> tuple[list[str], int | None]:
    plan = plan_night_fetch(_root(root), split, n)
    return plan.describe(), plan.n_triplets


@register_dataset(
    "night",
    splits=NIGHT_SPLITS,
    default_split="test",
    needs_root=False,
    description="DreamSim's NIGHT 2AFC set (data.csv + ref/ + distort/), votes >= 6, resized to 224 bicubic; "
    "night = the cache filled by `run_bench.py fetch night` ($LIPSIM_BENCH_DATA/nights), night:ROOT = a folder",
    fetch=_fetch,
    fetch_plan=_fetch_plan,
    attack_eps={"l2": (0.5, 1.0, 2.0, 3.0)},  # the LipSim paper's (3x224x224 inputs)
)
def night_dataset(root: Path | None, split: str) -> TwoAFCDataset:
    folder = _root(root)
    if root is None and not (folder / "data.csv").is_file():
        raise DatasetError(
            f"NIGHT is not in its cache {folder}; fetch it with `python run_bench.py fetch night --split {split} [--n N]` "
            "(needs network; --n fetches only the chunks those triplets need), add --download to the run, "
            "or point at a copy with --dataset night:ROOT"
        )
    return night_like_dataset(folder, split, name="night", image_size=NIGHT_IMAGE_SIZE)
