"""A local static-file HTTP server with single-range support and switchable faults, for fetch tests."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE_RE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass
class Served:
    """One answered request, so tests can count requests and bytes."""

    method: str
    path: str
    range: str | None
    status: int
    bytes_sent: int


@dataclass
class ServerState:
    """What the server serves and which faults it injects; tests flip these between calls."""

    directory: Path
    no_range: bool = False  # answer Range requests with 200 and the whole file
    truncate: set[str] = field(default_factory=set)  # URL paths whose bodies stop halfway (Content-Length stays full)
    log: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests_for(self, suffix: str) -> list[Served]:
        return [r for r in self.log if r.path.endswith(suffix)]

    def bytes_for(self, suffix: str) -> int:
        return sum(r.bytes_sent for r in self.requests_for(suffix))


class RangeHandler(BaseHTTPRequestHandler):
    """GET/HEAD of files under ``state.directory``; honours one ``Range: bytes=a-b`` with 206."""

    state: ServerState  # set on a subclass per server

    def log_message(self, format: str, *args: object) -> None:  # silence per-request logging
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        url_path = unquote(urlsplit(self.path).path)
        file = (self.state.directory / url_path.lstrip("/")).resolve()
        if not file.is_file() or self.state.directory.resolve() not in file.parents:
            self._answer(url_path, 404, {}, b"", body)
            return
        data = file.read_bytes()
        header = self.headers.get("Range")
        match = _RANGE_RE.fullmatch(header.strip()) if header else None
        if match and not self.state.no_range:
            first = int(match.group(1))
            last = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            if first >= len(data):
                self._answer(url_path, 416, {"Content-Range": f"bytes */{len(data)}"}, b"", body)
                return
            part = data[first : last + 1]
            self._answer(url_path, 206, {"Content-Range": f"bytes {first}-{last}/{len(data)}"}, part, body)
            return
        self._answer(url_path, 200, {}, data, body)

    def _answer(self, url_path: str, status: int, headers: dict[str, str], data: bytes, body: bool) -> None:
        sent = data[: len(data) // 2] if url_path in self.state.truncate else data
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "none" if self.state.no_range else "bytes")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        written = 0
        if body:
            try:
                self.wfile.write(sent)
                written = len(sent)
            except (BrokenPipeError, ConnectionResetError):  # the client hung up early (e.g. on a 200 to a Range)
                pass
        with self.state.lock:
            self.state.log.append(Served(self.command, url_path, self.headers.get("Range"), status, written))
        self.close_connection = True


def start_server(directory: Path) -> tuple[ThreadingHTTPServer, ServerState, str]:
    """Serve ``directory`` on 127.0.0.1 (any free port) from a daemon thread; returns (server, state, base URL)."""
    state = ServerState(directory)
    handler = type("BoundRangeHandler", (RangeHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return server, state, f"http://{host}:{port}"
