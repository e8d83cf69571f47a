"""Fetch NIGHT (or just the part a run needs) into a local cache, verifying what arrives.

NIGHT is published as one ~58 GB ``nights.zip`` and as 100 chunk pairs
``nights_chunked/{ref,distort}/NNN.zip``. The chunks do not ship ``data.csv``, so it is read out of
``nights.zip`` with HTTP Range requests (central directory + one member, a few MB). Only the chunks
that the selected triplets touch are downloaded, one archive at a time, and deleted once extracted.

No official checksums exist, so integrity is: Content-Length == bytes received, every member's
CRC-32 (members are read fully), optional sha256 pins, and a sha256 manifest in ``ROOT/.fetch``.
A chunk is marked done only after full extraction, so a killed fetch resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd
from tqdm import tqdm

from bench.datasets.night import MIN_VOTES, NIGHT_SPLITS, read_night_csv, select_split
from bench.errors import DatasetError
from bench.records import atomic_write, atomic_write_bytes, atomic_write_text

NIGHT_BASE_URL_ENV = "LIPSIM_BENCH_NIGHT_URL"
DEFAULT_NIGHT_BASE_URL = "https://data.csail.mit.edu/nights"
DATA_DIR_ENV = "LIPSIM_BENCH_DATA"
FULL_ZIP = "nights.zip"
KINDS = ("ref", "distort")
N_CHUNKS = 100
FULL_ZIP_GB = 58.0
APPROX_PAIR_GB = FULL_ZIP_GB / N_CHUNKS  # ref + distort archives of one chunk, when sizes are unknown offline
READ_AHEAD = 1 << 20  # zipfile reads in small pieces; fetch at least this much per Range request
BLOCK = 1 << 20
TIMEOUT_S = 60.0
FETCH_DIR = ".fetch"
_CHUNK_RE = re.compile(r"^[\w-]+$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
# CRC mismatch / bad header, bad deflate stream, truncated member, unsupported compression method
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError)

# Relative archive path (e.g. "nights_chunked/ref/000.zip", or "data.csv") -> sha256 hex digest.
# No official checksums are published; add entries once a trusted download has been recorded.
PINNED_SHA256: dict[str, str] = {}


class NetworkError(DatasetError):
    """A download failed for a network reason; ``fetch_night`` rewords it with the offline recipe."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(network_message(url, reason))


def network_message(url: str, reason: str, split: str = "S", n: str | None = "N", root: str = "DIR") -> str:
    """One line: what failed, and how to fetch on another machine instead (placeholders until known)."""
    n_part = "" if n is None else f" --n {n}"
    return (
        f"could not download {url} ({reason}); on a machine with network run "
        f"`python run_bench.py fetch night --split {split}{n_part} --root {root}`, "
        f"copy {root} here and pass --dataset night:{root}"
    )


# --------------------------------------------------------------------------- locations


def default_night_root() -> Path:
    """``$LIPSIM_BENCH_DATA/nights`` when set (shared data disks), else a per-user cache."""
    data = os.environ.get(DATA_DIR_ENV)
    if data:
        return Path(data).expanduser() / "nights"
    return Path.home() / ".cache" / "lipsim_bench" / "nights"


def night_base_url() -> str:
    """The mirror to fetch from; an env var so tests (and mirrors) can point elsewhere."""
    url = os.environ.get(NIGHT_BASE_URL_ENV, "").strip() or DEFAULT_NIGHT_BASE_URL
    if not url.startswith(("http://", "https://")):
        raise DatasetError(f"{NIGHT_BASE_URL_ENV}={url!r} is not an http(s) URL; set it to e.g. {DEFAULT_NIGHT_BASE_URL}")
    return url.rstrip("/")


def archive_relpath(kind: str, chunk: str) -> str:
    """Path of one chunk archive relative to the base URL (also its key in pins and the manifest)."""
    return f"nights_chunked/{kind}/{chunk}.zip"


def _fetch_dir(root: Path) -> Path:
    return root / FETCH_DIR


def _marker(root: Path, kind: str, chunk: str) -> Path:
    return _fetch_dir(root) / "done" / f"{kind}-{chunk}"


def _chunk_done(root: Path, chunk: str) -> bool:
    return all(_marker(root, kind, chunk).is_file() for kind in KINDS)


# --------------------------------------------------------------------------- selection and plan


def _check_args(split: str, n: int | None) -> None:
    """Same validation as the runner, so a plan never differs from what the benchmark reads."""
    if split not in NIGHT_SPLITS:
        raise DatasetError(f"unknown split {split!r} for dataset night; choose one of: {', '.join(NIGHT_SPLITS)}")
    if n is not None and n <= 0:
        raise DatasetError(f"--n must be a positive number of triplets, got {n}")


def _selected_rows(root: Path, split: str, n: int | None) -> pd.DataFrame:
    """Exactly the triplets the benchmark evaluates: the split, then the first ``n`` in file order."""
    rows = select_split(read_night_csv(root), split)
    return rows if n is None else rows.head(n)


def _chunk_of(path: str) -> str:
    """NIGHT stores images as ``ref/NNN/yyy.png``: the folder NNN names the chunk archive."""
    chunk = PurePosixPath(path).parent.name
    if not _CHUNK_RE.match(chunk) or chunk in KINDS:
        raise DatasetError(
            f"data.csv lists image path {path!r} without a chunk folder (expected ref/NNN/yyy.png); "
            "the file is not NIGHT's data.csv, delete it and fetch again"
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
    _check_args(split, n)
    root = Path(root).expanduser()
    if not (root / "data.csv").is_file():
        return NightFetchPlan(root, split, n, False, None, None, None)
    rows = _selected_rows(root, split, n)
    chunks = _chunks_of(rows)
    missing = [c for c in chunks if not _chunk_done(root, c)]
    return NightFetchPlan(root, split, n, True, chunks, missing, len(rows))


def night_is_complete(root: Path, split: str, n: int | None) -> bool:
    """data.csv is there and every needed chunk is done (or every needed image is simply present)."""
    plan = plan_night_fetch(root, split, n)
    if not plan.have_csv:
        return False
    if not plan.missing_chunks:
        return True
    return not _missing_images(plan.root, _selected_rows(plan.root, split, n))


def _missing_images(root: Path, rows: pd.DataFrame) -> list[str]:
    return [str(p) for col in ("ref_path", "left_path", "right_path") for p in rows[col] if not (root / str(p)).is_file()]


# --------------------------------------------------------------------------- HTTP


def _open(url: str, headers: dict[str, str] | None = None, timeout: float = TIMEOUT_S) -> http.client.HTTPResponse:
    """urlopen with every network failure turned into one :class:`NetworkError`."""
    request = urllib.request.Request(url, headers={"User-Agent": "lipsim-bench", **(headers or {})})
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # the scheme is checked in night_base_url
    except urllib.error.HTTPError as exc:
        exc.close()
        raise NetworkError(url, f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise NetworkError(url, str(exc.reason)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise NetworkError(url, str(exc) or type(exc).__name__) from None


def _read(response: http.client.HTTPResponse, size: int, url: str) -> bytes:
    """One read of a response body, with mid-transfer failures reworded like connection failures."""
    try:
        return response.read(size)
    except http.client.IncompleteRead as exc:
        return exc.partial
    except (OSError, http.client.HTTPException) as exc:
        raise NetworkError(url, str(exc) or type(exc).__name__) from None


def _read_upto(response: http.client.HTTPResponse, limit: int, url: str) -> bytes:
    """The body, but never more than ``limit`` bytes (a server ignoring the range end must not flood us)."""
    pieces: list[bytes] = []
    total = 0
    while total < limit and (block := _read(response, min(BLOCK, limit - total), url)):
        pieces.append(block)
        total += len(block)
    return b"".join(pieces)


def _no_range_error(url: str) -> DatasetError:
    return DatasetError(
        f"the server of {url} ignores HTTP Range requests (answered 200, not 206), so data.csv cannot be read "
        f"out of {FULL_ZIP} without downloading all ~{FULL_ZIP_GB:.0f} GB; point {NIGHT_BASE_URL_ENV} at a mirror "
        f"that supports Range, or unzip data.csv from a downloaded {FULL_ZIP} into the dataset root"
    )


def _content_range(response: http.client.HTTPResponse, url: str) -> tuple[int, int, int | None]:
    """(first, last, total) from a 206 answer; total is None when the server writes ``*``."""
    if response.status != 206:
        raise _no_range_error(url)
    header = response.headers.get("Content-Range", "")
    match = _CONTENT_RANGE_RE.fullmatch(header.strip())
    if not match:
        raise DatasetError(f"{url}: the server answered a Range request without a usable Content-Range ({header!r}); use another mirror")
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), total


class HttpRangeFile(io.RawIOBase):
    """A read-only, seekable file over HTTP Range requests, so zipfile can read one member of a huge zip."""

    def __init__(self, url: str, read_ahead: int = READ_AHEAD) -> None:
        super().__init__()
        self.url = url
        self.read_ahead = read_ahead
        self.requests = 0
        self.bytes_received = 0
        self._pos = 0
        self._buf = b""
        self._buf_start = 0
        self.size = self._probe_size()

    def _probe_size(self) -> int:
        """A one-byte Range request both checks Range support and reveals the size (Content-Range)."""
        self.requests += 1
        with _open(self.url, {"Range": "bytes=0-0"}) as response:
            _, _, total = _content_range(response, self.url)
        if total is None:
            raise DatasetError(f"{self.url}: the server does not tell the file size (Content-Range total '*'); use another mirror")
        return total

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        origin = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if origin + offset < 0:
            raise ValueError(f"negative seek position {origin + offset}")
        self._pos = origin + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` completely (zipfile treats a short read as a truncated zip) unless EOF comes first."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._pos < self.size:
            if not self._buf_start <= self._pos < self._buf_start + len(self._buf):
                self._fill(self._pos, max(len(view) - filled, self.read_ahead))
            start = self._pos - self._buf_start
            piece = self._buf[start : start + len(view) - filled]
            view[filled : filled + len(piece)] = piece
            filled += len(piece)
            self._pos += len(piece)
        return filled

    def _fill(self, start: int, length: int) -> None:
        """Fetch ``[start, start+length)`` (clipped to the file) into the read-ahead buffer."""
        end = min(start + length, self.size) - 1
        expected = end - start + 1
        self.requests += 1
        with _open(self.url, {"Range": f"bytes={start}-{end}"}) as response:
            first, _, _ = _content_range(response, self.url)
            data = _read_upto(response, expected, self.url)
        self.bytes_received += len(data)
        if first != start or len(data) != expected:
            raise DatasetError(
                f"{self.url}: asked for bytes {start}-{end}, got {len(data)} bytes from offset {first}; "
                "the transfer was cut off or the server misbehaved: run the fetch again"
            )
        self._buf, self._buf_start = data, start


# --------------------------------------------------------------------------- integrity records


def load_pins(pins: Path | None) -> dict[str, str]:
    """PINNED_SHA256 plus a JSON file: ``{relpath: sha256}``, or a manifest.json from an earlier fetch."""
    merged = {k: v.lower() for k, v in PINNED_SHA256.items()}
    if pins is None:
        return merged
    try:
        data = json.loads(Path(pins).expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"pins file {pins} is not readable JSON ({exc}); pass a JSON object {{relpath: sha256}}") from None
    if isinstance(data, dict) and isinstance(data.get("files"), dict):
        data = {k: v.get("sha256") if isinstance(v, dict) else v for k, v in data["files"].items()}
    if not isinstance(data, dict):
        raise DatasetError(f"pins file {pins} must hold a JSON object {{relpath: sha256}}")
    for key, value in data.items():
        if not isinstance(value, str) or not _SHA_RE.match(value.lower()):
            raise DatasetError(f"pins file {pins}: {key!r} maps to {value!r}, not a 64-hex-digit sha256")
        merged[key] = value.lower()
    return merged


def _check_pin(relpath: str, digest: str, pins: dict[str, str]) -> None:
    expected = pins.get(relpath)
    if expected is not None and expected != digest:
        raise DatasetError(
            f"sha256 mismatch for {relpath}: pinned {expected}, downloaded {digest}; the download is corrupt or the "
            "server's file changed: run the fetch again, and update the pin only if the new file is trusted"
        )


def _manifest_path(root: Path) -> Path:
    return _fetch_dir(root) / "manifest.json"


def _record(root: Path, relpath: str, url: str, size: int, digest: str) -> None:
    """Add one downloaded file to the manifest (atomically: a killed fetch never leaves half a manifest)."""
    path = _manifest_path(root)
    manifest: dict = {"version": 1, "files": {}}
    if path.is_file():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DatasetError(f"{path} is not valid JSON; delete it (it is only a record) and fetch again") from None
    manifest.setdefault("files", {})[relpath] = {
        "url": url,
        "bytes": size,
        "sha256": digest,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- data.csv


def _csv_member(archive: zipfile.ZipFile, url: str) -> zipfile.ZipInfo:
    """The shortest member path named data.csv (the zip's top-level prefix is not fixed)."""
    found = [i for i in archive.infolist() if PurePosixPath(i.filename).name == "data.csv" and not i.is_dir()]
    if not found:
        raise DatasetError(f"{url} holds no data.csv; check {NIGHT_BASE_URL_ENV} points at NIGHT")
    return min(found, key=lambda info: len(info.filename))


def fetch_night_csv(root: Path, base: str, pins: dict[str, str]) -> Path:
    """Read data.csv out of nights.zip via Range requests (central directory + that member only)."""
    url = f"{base}/{FULL_ZIP}"
    try:
        with HttpRangeFile(url) as remote, zipfile.ZipFile(remote) as archive:
            member = _csv_member(archive, url)
            data = archive.read(member)  # read fully: zipfile checks the CRC-32 at the end
    except _ZIP_ERRORS as exc:
        raise DatasetError(f"{url}: data.csv could not be read from the zip ({exc}); run the fetch again") from None
    digest = hashlib.sha256(data).hexdigest()
    _check_pin("data.csv", digest, pins)
    target = root / "data.csv"
    atomic_write_bytes(target, data)
    _record(root, "data.csv", f"{url}#{member.filename}", len(data), digest)
    return target


# --------------------------------------------------------------------------- chunk archives


def _progress_bar(total: int | None, label: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled, leave=False)


def _download(url: str, dest: Path, *, label: str, progress: bool) -> tuple[int, str]:
    """Stream ``url`` to ``dest``; returns (bytes, sha256). A short body (vs Content-Length) is an error."""
    digest = hashlib.sha256()
    received = 0
    with _open(url) as response, open(dest, "wb") as out:
        header = response.headers.get("Content-Length")
        expected = int(header) if header and header.isdigit() else None
        with _progress_bar(expected, label, progress) as bar:
            while block := _read(response, BLOCK, url):
                out.write(block)
                digest.update(block)
                received += len(block)
                bar.update(len(block))
    if expected is not None and received != expected:
        raise DatasetError(
            f"download of {url} was cut off: received {received} of {expected} bytes (Content-Length); run the fetch again"
        )
    return received, digest.hexdigest()


def _member_target(root: Path, kind: str, chunk: str, name: str, archive: str) -> Path | None:
    """Where a member lands: always ROOT/kind/NNN/..., whatever prefix the archive used; None to skip."""
    parts = PurePosixPath(name).parts
    if not parts or name.endswith("/") or "__MACOSX" in parts:
        return None
    if name.startswith("/") or ".." in parts or "\\" in name:
        raise DatasetError(f"{archive} holds an unsafe member path {name!r}; refusing to extract it")
    if kind in parts[:-1]:
        parts = parts[parts.index(kind) + 1 :]
    if len(parts) == 1:
        parts = (chunk, *parts)
    return root.joinpath(kind, *parts)


def _extract(archive_path: Path, root: Path, kind: str, chunk: str, label: str) -> int:
    """Extract every member, each read fully (CRC-32 checked) into a temp file then renamed into place."""
    count = 0
    try:
        with zipfile.ZipFile(archive_path) as archive:
            for info in archive.infolist():
                target = _member_target(root, kind, chunk, info.filename, label)
                if target is None:
                    continue
                _extract_member(archive, info, target)
                count += 1
    except _ZIP_ERRORS as exc:
        raise DatasetError(f"{label} is corrupt ({exc}); it was deleted and the chunk left unmarked: run the fetch again") from None
    return count


def _extract_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    def copy(out) -> None:
        with archive.open(info) as src:
            while block := src.read(BLOCK):  # the last read of a member raises BadZipFile on a CRC mismatch
                out.write(block)

    atomic_write(target, copy, binary=True, sync=False)


def fetch_chunk(root: Path, base: str, kind: str, chunk: str, pins: dict[str, str], progress: bool) -> None:
    """Download one archive to ROOT/.fetch, check it, extract it, record it, mark it done, delete it."""
    relpath = archive_relpath(kind, chunk)
    url = f"{base}/{relpath}"
    part = _fetch_dir(root) / f"{kind}-{chunk}.zip.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    try:
        size, digest = _download(url, part, label=relpath, progress=progress)
        _check_pin(relpath, digest, pins)
        if not _extract(part, root, kind, chunk, relpath):
            raise DatasetError(f"{url} holds no files; check {NIGHT_BASE_URL_ENV} points at NIGHT")
    finally:
        part.unlink(missing_ok=True)
    _record(root, relpath, url, size, digest)
    marker = _marker(root, kind, chunk)
    atomic_write_text(marker, digest + "\n")


# --------------------------------------------------------------------------- entry point


def fetch_night(
    root: Path | None = None,
    split: str = "test",
    n: int | None = None,
    *,
    pins: Path | None = None,
    progress: bool = True,
) -> Path:
    """Download what the selected triplets still need (data.csv first), verify it, return the root."""
    _check_args(split, n)
    root = Path(root).expanduser() if root is not None else default_night_root()
    try:
        _fetch_missing(root, split, n, load_pins(pins), progress)
    except NetworkError as exc:
        n_text = None if n is None else str(n)
        raise DatasetError(network_message(exc.url, exc.reason, split, n_text, str(root))) from None
    return root


def _fetch_missing(root: Path, split: str, n: int | None, pins: dict[str, str], progress: bool) -> None:
    base = night_base_url()
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "data.csv").is_file():
        fetch_night_csv(root, base, pins)
    plan = plan_night_fetch(root, split, n)
    assert plan.missing_chunks is not None
    for chunk in plan.missing_chunks:
        for kind in KINDS:
            if not _marker(root, kind, chunk).is_file():
                fetch_chunk(root, base, kind, chunk, pins, progress)
    missing = _missing_images(root, _selected_rows(root, split, n))
    if missing:
        raise DatasetError(
            f"{len(missing)} image(s) listed in {root / 'data.csv'} are still missing after the fetch, e.g. {missing[0]}; "
            f"the archives at {base} do not match data.csv: delete {root} and fetch again"
        )
