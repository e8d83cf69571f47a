"""Files identified by content: the sha256 of each, hashed once and remembered in a small cache file.

Dataset images enter every unit key by content, not by size and modification time: an image replaced
by another of the same size with its time kept (``cp -p``, ``rsync -a``) must never reuse records. So
a rerun stays fast, each hash is kept in ``$LIPSIM_BENCH_CACHE/content-sha256.json`` under the file's
path, size, mtime, ctime and inode. ctime is there because an in-place rewrite followed by a restored
mtime keeps the other four, and ctime cannot be set back. An entry whose times are within
:data:`RACY_NS` of the moment it was hashed is not kept (a rewrite in the same clock tick would look
unchanged), so a file written just before a run is hashed again on the next one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from lipsim_bench.errors import BenchError
from lipsim_bench.io import atomic_write_text, sha256_file
from lipsim_bench.locations import cache_root

CACHE_NAME = "content-sha256.json"
CACHE_FORMAT = 1
RACY_NS = 2_000_000_000

Stamp = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def _stamp(stat: os.stat_result) -> Stamp:
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


class ContentHashes:
    """sha256 of files, looked up by (path, size, mtime, ctime, inode); :meth:`save` keeps what was hashed."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else _default_path()
        self.seen = self._file_stamp()
        self.entries: dict[str, list] = self._read()
        self.new: dict[str, list] = {}
        self.hashed = 0  # files read (the rest came from the cache)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.path) if self.path is not None else None
        except OSError:
            return None
        return (stat.st_size, stat.st_mtime_ns, stat.st_ino) if stat else None

    def refresh(self) -> ContentHashes:
        """Read the cache file again if another process wrote it since (entries stay checked by stamp)."""
        if self._file_stamp() != self.seen:
            self.seen = self._file_stamp()
            self.entries = {**self._read(), **self.new}
        return self

    def _read(self) -> dict[str, list]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return {}  # absent or damaged: start over (it is only a cache)
        files = data.get("files") if isinstance(data, dict) and data.get("format") == CACHE_FORMAT else None
        return files if isinstance(files, dict) else {}

    def sha256(self, path: str | Path) -> str | None:
        """The file's sha256 (hex), or None when it cannot be read (missing: the caller names it)."""
        key = os.path.abspath(path)
        try:
            before = _stamp(os.stat(key))
        except OSError:
            return None
        entry = self.entries.get(key)
        if isinstance(entry, list) and len(entry) == 5 and tuple(entry[:4]) == before and isinstance(entry[4], str):
            return entry[4]
        try:
            digest = sha256_file(key)
            after = _stamp(os.stat(key))
        except OSError:
            return None
        self.hashed += 1
        if after == before and time.time_ns() - max(after[1], after[2]) > RACY_NS:
            self.entries[key] = self.new[key] = [*after, digest]
        return digest

    def save(self) -> None:
        """Merge this run's hashes into the cache file (atomically; entries of deleted files dropped).

        Best effort: a cache that cannot be written only costs the hashing again next time."""
        if self.path is None or not self.new:
            return
        merged = {**self._read(), **self.new}
        kept = {k: v for k, v in merged.items() if os.path.exists(k)}
        try:
            atomic_write_text(self.path, json.dumps({"format": CACHE_FORMAT, "files": kept}, separators=(",", ":")))
        except OSError:
            return
        self.entries, self.new, self.seen = kept, {}, self._file_stamp()


def _default_path() -> Path | None:
    try:
        return cache_root() / CACHE_NAME
    except BenchError:  # a misconfigured cache is reported where it is used for real; here it only costs speed
        return None


_SHARED: dict[Path | None, ContentHashes] = {}


def content_hashes() -> ContentHashes:
    """This process's view of the cache file (read once, again only when another process rewrote it)."""
    path = _default_path()
    if path not in _SHARED:
        _SHARED[path] = ContentHashes(path)
    return _SHARED[path].refresh()
