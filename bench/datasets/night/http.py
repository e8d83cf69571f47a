"""HTTP for the NIGHT fetcher: one error type for network failures, Range reads of a remote zip, streamed downloads.

Integrity on the wire: Content-Length == bytes received, and a Range answer must be exactly the bytes asked for.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from lipsim_bench.datasets.night.layout import FETCH_AGAIN, FULL_ZIP, FULL_ZIP_GB, NIGHT_BASE_URL_ENV
from lipsim_bench.errors import DatasetError

READ_AHEAD = 1 << 20  # zipfile reads in small pieces; fetch at least this much per Range request
BLOCK = 1 << 20
TIMEOUT_S = 60.0
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


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
        raise DatasetError(
            f"{url}: the server answered a Range request without a usable Content-Range ({header!r}); use another mirror"
        )
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
            raise DatasetError(
                f"{self.url}: the server does not tell the file size (Content-Range total '*'); use another mirror"
            )
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
                f"the transfer was cut off or the server misbehaved: {FETCH_AGAIN}"
            )
        self._buf, self._buf_start = data, start


# --------------------------------------------------------------------------- streamed downloads


def _progress_bar(total: int | None, label: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled, leave=False)


def download(url: str, dest: Path, *, label: str, progress: bool) -> tuple[int, str]:
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
            f"download of {url} was cut off: received {received} of {expected} bytes (Content-Length); {FETCH_AGAIN}"
        )
    return received, digest.hexdigest()
