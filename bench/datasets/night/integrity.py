"""What the NIGHT fetcher trusts: optional sha256 pins, and the sha256 manifest of what it downloaded.

No official checksums exist, so besides the wire checks (http.py) and every member's CRC-32 (fetch.py),
integrity is: optional sha256 pins, and a manifest in ``ROOT/.fetch/manifest.json``.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from lipsim_bench.datasets.night.layout import FETCH_AGAIN, fetch_dir
from lipsim_bench.errors import DatasetError
from lipsim_bench.io import atomic_write_text

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")

# Relative archive path (e.g. "nights_chunked/ref/000.zip", or "data.csv") -> sha256 hex digest.
# No official checksums are published; add entries once a trusted download has been recorded.
PINNED_SHA256: dict[str, str] = {}


def load_pins(pins: Path | None) -> dict[str, str]:
    """PINNED_SHA256 plus a JSON file: ``{relpath: sha256}``, or a manifest.json from an earlier fetch."""
    merged = {k: v.lower() for k, v in PINNED_SHA256.items()}
    if pins is None:
        return merged
    try:
        data = json.loads(Path(pins).expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(
            f"pins file {pins} is not readable JSON ({exc}); pass a JSON object {{relpath: sha256}}"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("files"), dict):
        data = {k: v.get("sha256") if isinstance(v, dict) else v for k, v in data["files"].items()}
    if not isinstance(data, dict):
        raise DatasetError(f"pins file {pins} must hold a JSON object {{relpath: sha256}}")
    for key, value in data.items():
        if not isinstance(value, str) or not _SHA_RE.match(value.lower()):
            raise DatasetError(f"pins file {pins}: {key!r} maps to {value!r}, not a 64-hex-digit sha256")
        merged[key] = value.lower()
    return merged


def check_pin(relpath: str, digest: str, pins: dict[str, str]) -> None:
    expected = pins.get(relpath)
    if expected is not None and expected != digest:
        raise DatasetError(
            f"sha256 mismatch for {relpath}: pinned {expected}, downloaded {digest}; the download is corrupt or the "
            f"server's file changed: {FETCH_AGAIN}, and update the pin only if the new file is trusted"
        )


def manifest_path(root: Path) -> Path:
    return fetch_dir(root) / "manifest.json"


def record_file(root: Path, relpath: str, url: str, size: int, digest: str) -> None:
    """Add one downloaded file to the manifest (atomically: a killed fetch never leaves half a manifest)."""
    path = manifest_path(root)
    manifest: dict = {"version": 1, "files": {}}
    if path.is_file():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DatasetError(f"{path} is not valid JSON; delete it (it is only a record) and {FETCH_AGAIN}") from None
    manifest.setdefault("files", {})[relpath] = {
        "url": url,
        "bytes": size,
        "sha256": digest,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
