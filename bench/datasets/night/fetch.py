"""Fetch NIGHT (or just the part a run needs) into a local cache, verifying what arrives.

The chunks do not ship ``data.csv``, so it is read out of ``nights.zip`` with HTTP Range requests
(central directory + one member, a few MB). Only the chunks that the selected triplets touch are
downloaded, one archive at a time, and deleted once extracted.

Integrity: Content-Length == bytes received, every member's CRC-32 (members are read fully),
optional sha256 pins, and a sha256 manifest in ``ROOT/.fetch``. A chunk is marked done only after
full extraction, so a killed fetch resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from lipsim_bench.datasets.night.http import BLOCK, HttpRangeFile, NetworkError, download, network_message
from lipsim_bench.datasets.night.integrity import check_pin, load_pins, record_file
from lipsim_bench.datasets.night.layout import (
    FETCH_AGAIN,
    FULL_ZIP,
    KINDS,
    NIGHT_BASE_URL_ENV,
    archive_relpath,
    default_night_root,
    done_marker,
    fetch_dir,
    night_base_url,
)
from lipsim_bench.datasets.night.plan import check_args, missing_images, plan_night_fetch, selected_rows
from lipsim_bench.errors import DatasetError
from lipsim_bench.io import atomic_write, atomic_write_bytes, atomic_write_text

# CRC mismatch / bad header, bad deflate stream, truncated member, unsupported compression method
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError)


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
        raise DatasetError(f"{url}: data.csv could not be read from the zip ({exc}); {FETCH_AGAIN}") from None
    digest = hashlib.sha256(data).hexdigest()
    check_pin("data.csv", digest, pins)
    target = root / "data.csv"
    atomic_write_bytes(target, data)
    record_file(root, "data.csv", f"{url}#{member.filename}", len(data), digest)
    return target


# --------------------------------------------------------------------------- chunk archives


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
        raise DatasetError(
            f"{label} is corrupt ({exc}); it was deleted and the chunk left unmarked: {FETCH_AGAIN}"
        ) from None
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
    part = fetch_dir(root) / f"{kind}-{chunk}.zip.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    try:
        size, digest = download(url, part, label=relpath, progress=progress)
        check_pin(relpath, digest, pins)
        if not _extract(part, root, kind, chunk, relpath):
            raise DatasetError(f"{url} holds no files; check {NIGHT_BASE_URL_ENV} points at NIGHT")
    finally:
        part.unlink(missing_ok=True)
    record_file(root, relpath, url, size, digest)
    marker = done_marker(root, kind, chunk)
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
    check_args(split, n)
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
            if not done_marker(root, kind, chunk).is_file():
                fetch_chunk(root, base, kind, chunk, pins, progress)
    missing = missing_images(root, selected_rows(root, split, n))
    if missing:
        raise DatasetError(
            f"{len(missing)} image(s) listed in {root / 'data.csv'} are still missing after the fetch, e.g. {missing[0]}; "
            f"the archives at {base} do not match data.csv: delete {root} and {FETCH_AGAIN}"
        )
