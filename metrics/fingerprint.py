"""Identities of weight files, for result keys: other weights must never reuse stored numbers."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def file_fingerprint(path: Path) -> str:
    """``sha256:<hex>`` of a weights file, hashed once per process while its size and mtime hold."""
    stat = Path(path).stat()
    return "sha256:" + _cached_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def cache_file_fingerprint(path: Path | None) -> str:
    """A cheap identity for large files in a hub cache: ``<revision folder>/<file>:<bytes>``.

    Hugging Face snapshots live under ``snapshots/<commit>/``, so the folder name pins the revision;
    hashing a 600 MB file on every run would cost seconds for no extra safety.
    """
    if path is None:
        return "missing"
    return f"{path.parent.name}/{path.name}:{path.stat().st_size}"
