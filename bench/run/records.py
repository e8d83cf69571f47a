"""Result records: one JSON per unit of work, written atomically, keyed by its full configuration.

A unit (metric x dataset x split x evaluation, with every setting that changes its numbers) is
stored as soon as it finishes, so a run that dies loses at most the unit in flight and a rerun of
the same command skips what is done. Changing any setting changes the key: never a silent reuse.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from lipsim_bench.errors import BenchError
from lipsim_bench.io import atomic_write_bytes, atomic_write_text
from lipsim_bench.run.integrity import csv_digest, read_checked, seal

#: Bump when what a record means changes; older records are recomputed, never misread.
#: 3: keys hold resolved options, evaluation version, data content, adapter source; records hold kind and notes.
#: 4: records carry their own checksum and their triplet CSV's row count and sha256 (checked on every read).
#: 5: keys hold the evaluation's and attack's source hash, the torch version, the device type and each image's
#:    sha256; every stored score is recomputed from the record's triplet rows on every read.
#:    Later format-5 records also hold the metric's ``conventions`` (lipsim_bench.metrics.conventions): no bump,
#:    since nothing reads them back; older records simply lack them and read as before.
RECORD_FORMAT = 5
#: Versions every record's provenance names: the core libraries and the packages the adapters mirror.
PROVENANCE_PACKAGES = (
    *("torch", "torchvision", "numpy", "pandas"),
    *("open_clip_torch", "dreamsim", "timm", "lpips", "stlpips-pytorch"),
)
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Unit:
    """Everything that determines one unit's numbers, resolved (``settings``: seed, weights, adapter
    source, data content, threat model, the evaluation's version and options)."""

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
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
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
        "packages": {d: _version(d) for d in PROVENANCE_PACKAGES},
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "time_ns": time.time_ns(),  # orders records computed within one second (newest wins a cell)
    }


class RecordStore:
    """The ``records/`` folder of a run: ``<stem>.json`` (scores, config) + ``<stem>.triplets.csv``."""

    def __init__(self, run_dir: Path, on_invalid: Callable[[str], None] | None = None) -> None:
        self.dir = run_dir / "records"
        self.on_invalid = on_invalid  # told, in one line, about each stored record that fails its checks

    def _paths(self, unit: Unit) -> tuple[Path, Path]:
        stem = unit.stem()
        return self.dir / f"{stem}.json", self.dir / f"{stem}.triplets.csv"

    def load(self, unit: Unit) -> tuple[dict[str, Any], pd.DataFrame] | None:
        """The stored record of ``unit`` if every check passes; None if absent or failing (then recomputed)."""
        json_path, _ = self._paths(unit)
        if not json_path.exists():
            return None
        checked = read_checked(json_path, RECORD_FORMAT)
        if not isinstance(checked, str) and checked[0]["key"] != unit.key():
            checked = "its key does not match its file name"
        if isinstance(checked, str):
            if self.on_invalid is not None:
                self.on_invalid(f"invalid record {json_path}: {checked}; recomputing it")
            return None
        return checked

    def save(self, unit: Unit, body: dict[str, Any], triplets: pd.DataFrame) -> dict[str, Any]:
        """Store one finished unit: triplets first, the JSON last, so a JSON always has its CSV."""
        json_path, csv_path = self._paths(unit)
        data = triplets.to_csv(index=False).encode("utf-8")
        record = seal(make_record(unit, body, csv_path.name, rows=len(triplets), sha256=csv_digest(data)))
        try:
            atomic_write_bytes(csv_path, data)
            atomic_write_text(json_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
        except OSError as exc:
            raise BenchError(
                f"could not write {exc.filename or json_path}: {exc.strerror or exc}; fix that (free "
                "space, permissions), then rerun the same command: finished units are kept"
            ) from None
        return record

    def artifact_path(self, unit: Unit, name: str) -> Path:
        """``<stem>.<name>.safetensors`` beside the unit's record: tensors only, no code (unlike a pickle)."""
        return self.dir / f"{unit.stem()}.{name}.safetensors"

    def has_artifact(self, unit: Unit, name: str) -> bool:
        return self.artifact_path(unit, name).is_file()

    def save_artifact(self, unit: Unit, name: str, tensors: dict[str, Any]) -> None:
        """Store a unit's tensors (e.g. its adversarial examples), keyed like the unit: the file's metadata
        holds the unit key, so a file renamed to another unit is refused on reading."""
        from safetensors.torch import save

        path = self.artifact_path(unit, name)
        blob = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata={"key": unit.key()})
        try:
            atomic_write_bytes(path, blob)
        except OSError as exc:
            raise BenchError(
                f"could not write {exc.filename or path}: {exc.strerror or exc}; fix that (free space, permissions), "
                "then rerun the same command: finished units are kept"
            ) from None

    def load_artifact(self, unit: Unit, name: str) -> dict[str, Any] | None:
        """The tensors stored for ``unit`` under ``name``; None if absent. A damaged file, or one stored for
        another unit, is one line naming it."""
        from safetensors import SafetensorError, safe_open

        path = self.artifact_path(unit, name)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                key = (handle.metadata() or {}).get("key")
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise BenchError(f"cannot read {path} ({exc}); delete it and rerun with the same options") from None
        if key != unit.key():
            raise BenchError(
                f"{path} was stored for another unit (key {key}); delete it and rerun with the same options"
            )
        return tensors


class MemoryStore:
    """A store that keeps nothing on disk: ``bench.evaluate`` without ``out``."""

    def load(self, unit: Unit) -> None:
        return None

    def save(self, unit: Unit, body: dict[str, Any], triplets: pd.DataFrame) -> dict[str, Any]:
        return make_record(unit, body, None)


def make_record(
    unit: Unit, body: dict[str, Any], triplets_file: str | None, *, rows: int | None = None, sha256: str | None = None
) -> dict[str, Any]:
    """The JSON of one unit: its key, the unit, what the evaluation produced, config and provenance,
    and what verifies its per-triplet CSV (row count, sha256 of its bytes)."""
    return {
        "format": RECORD_FORMAT,
        "key": unit.key(),
        "unit": asdict(unit),
        **body,
        "triplets_file": triplets_file,
        "triplets_rows": rows,
        "triplets_sha256": sha256,
        "provenance": provenance(),
    }


def read_triplets(path: Path) -> pd.DataFrame:
    """A per-triplet CSV with ids and groups kept as text (a unit that did not apply has none)."""
    try:
        return pd.read_csv(path, dtype={"id": str, "group": str})
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
