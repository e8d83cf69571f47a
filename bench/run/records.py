"""Result records: one JSON per unit of work, written atomically, keyed by its full configuration.

A unit (metric x dataset x split x evaluation, with every setting that changes its numbers) is
stored as soon as it finishes, so a run that dies loses at most the unit in flight and a rerun of
the same command skips what is done. Changing any setting changes the key: never a silent reuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import IO, Any, Callable

import pandas as pd

RECORD_FORMAT = 2  # bump when the code that computes a unit changes its per-triplet output
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Unit:
    """Everything that determines one unit's numbers (and nothing that does not, like batch size)."""

    metric: str
    dataset: str
    split: str
    n: int | None
    evaluation: str
    settings: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def stem(self) -> str:
        safe_metric = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.metric)
        return f"{safe_metric}__{self.evaluation}__{self.key()}"


def atomic_write(path: Path, write: Callable[[IO[Any]], object], *, binary: bool = False, sync: bool = True) -> None:
    """Call ``write(handle)`` on a temp file in the same folder, fsync, then rename: readers never see half a file.

    ``sync=False`` skips the fsync where a lost file is simply fetched again (tens of thousands of images).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            write(handle)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data), binary=True)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_commit() -> dict[str, Any]:
    """The project's commit and whether the work tree had uncommitted changes (None outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return {"commit": commit, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def provenance() -> dict[str, Any]:
    """Versions, commit and platform: what a reader needs to trust or reproduce a number."""
    return {
        "lipsim_bench": _version("lipsim-bench"),
        "git": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {d: _version(d) for d in ("torch", "torchvision", "numpy", "pandas", "open_clip_torch", "dreamsim")},
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


class RecordStore:
    """The ``records/`` folder of a run: ``<stem>.json`` (scores, config) + ``<stem>.triplets.csv``."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir / "records"

    def _paths(self, unit: Unit) -> tuple[Path, Path]:
        stem = unit.stem()
        return self.dir / f"{stem}.json", self.dir / f"{stem}.triplets.csv"

    def load(self, unit: Unit) -> tuple[dict[str, Any], pd.DataFrame] | None:
        """The stored record of ``unit``, or None if absent or unreadable (then it is recomputed)."""
        json_path, csv_path = self._paths(unit)
        if not (json_path.is_file() and csv_path.is_file()):
            return None
        try:
            record = json.loads(json_path.read_text(encoding="utf-8"))
            triplets = pd.read_csv(csv_path, dtype={"id": str, "group": str})
        except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            return None
        if record.get("key") != unit.key() or record.get("format") != RECORD_FORMAT:
            return None
        return record, triplets

    def save(self, unit: Unit, scores: list[dict[str, Any]], triplets: pd.DataFrame, config: dict[str, Any]) -> dict[str, Any]:
        """Store one finished unit: triplets first, the JSON last, so a JSON always has its CSV."""
        json_path, csv_path = self._paths(unit)
        atomic_write_text(csv_path, triplets.to_csv(index=False))
        record = {
            "format": RECORD_FORMAT,
            "key": unit.key(),
            "unit": asdict(unit),
            "scores": scores,
            "triplets_file": csv_path.name,
            "config": config,
            "provenance": provenance(),
        }
        atomic_write_text(json_path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        return record
