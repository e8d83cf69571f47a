"""Reading and writing weight files so that a damaged or crafted file is one clear error.

Every weights file the benchmark reads goes through here, because the defaults lie quietly:
``torch.load`` never checks the CRC32 that its own zip format stores (a flipped byte inside a tensor
loads and changes the embeddings), and its refusals end with advice to retry with
``weights_only=False`` (which would run the file's code). So:

* torch files: the zip's CRCs are checked before loading, loading is ``weights_only=True`` always,
  and any failure is a :class:`WeightsFileError` naming the file and the fix;
* safetensors files (what the project writes: they cannot carry code) hold, in their metadata, a
  sha256 of their tensor table and data, checked on every load;
* pinned files (bundled weights, torchvision's hash-named files) are checked against their sha256.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from lipsim_bench.io import atomic_write_bytes
from lipsim_bench.metrics.errors import MetricError
from lipsim_bench.metrics.fingerprint import file_fingerprint

#: Metadata key of the content hash in the safetensors files the project writes.
CONTENT_KEY = "content_sha256"
SAFETENSORS_SUFFIX = ".safetensors"


class WeightsFileError(MetricError):
    """A weights file that is missing, damaged, foreign or not what its pin says; the message says how to fix it."""


# ---------------------------------------------------------------- pins


def check_sha256(path: Path, expected: str, fix: str, *, prefix: bool = False) -> str:
    """The file's sha256 when it equals ``expected`` (or starts with it, ``prefix=True``), else one clear error."""
    found = file_fingerprint(path).removeprefix("sha256:")
    ok = found.startswith(expected.lower()) if prefix else found == expected.lower()
    if not ok:
        raise WeightsFileError(f"{path} is damaged or was replaced: sha256 {found}, expected {expected}; {fix}")
    return found


# ---------------------------------------------------------------- torch files


def _check_torch_zip(path: Path, fix: str) -> None:
    """Verify the zip's CRCs (torch writes them but never reads them) and that it is a torch archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
        raise WeightsFileError(f"{path} is a damaged zip archive ({_first_line(exc)}); {fix}") from None
    if bad is not None:
        raise WeightsFileError(f"{path} is damaged: {bad} fails its CRC check (a flipped or truncated byte); {fix}")
    if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        raise WeightsFileError(f"{path} is a zip archive but not a torch checkpoint (no data.pkl); {fix}")


def _first_line(exc: BaseException) -> str:
    """The error's first line, without torch's advice to load with ``weights_only=False``."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if "weights_only" in line or "weights only" in line.lower():
        return type(exc).__name__
    return line[:200]


def torch_load(path: Path, fix: str) -> object:
    """``torch.load(path, weights_only=True)`` after checking the file; every failure is one :class:`WeightsFileError`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"{path} not found; {fix}")
    if path.stat().st_size == 0:
        raise WeightsFileError(f"{path} is empty; {fix}")
    if zipfile.is_zipfile(path):
        _check_torch_zip(path, fix)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise WeightsFileError(
                f"{path} holds objects other than tensors (pickled code; refused, nothing was run); {fix}"
            ) from None
        raise WeightsFileError(f"{path} is not a readable torch checkpoint ({_first_line(exc)}); {fix}") from None
    except Exception as exc:  # truncation and foreign formats raise many types
        raise WeightsFileError(f"{path} is not a readable torch checkpoint ({_first_line(exc)}); {fix}") from None


# ---------------------------------------------------------------- safetensors


def _split(data: bytes, path: Path, fix: str) -> tuple[dict[str, object], bytes]:
    """Header (JSON) and data section of a safetensors file, or one clear error."""
    if len(data) < 8:
        raise WeightsFileError(f"{path} is {'empty' if not data else 'truncated'} (not a safetensors file); {fix}")
    size = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8")) if 8 + size <= len(data) else None
    except (UnicodeDecodeError, ValueError):
        header = None
    if not isinstance(header, dict):
        raise WeightsFileError(f"{path} is not a readable safetensors file (damaged or truncated header); {fix}")
    return header, data[8 + size :]


def _content_sha256(header: Mapping[str, object], body: bytes) -> str:
    """sha256 of the tensor table (names, dtypes, shapes, offsets) and the data: everything but the metadata."""
    table = {k: v for k, v in header.items() if k != "__metadata__"}
    digest = hashlib.sha256(json.dumps(table, sort_keys=True, separators=(",", ":")).encode())
    digest.update(body)
    return digest.hexdigest()


def save_safetensors(state: Mapping[str, Tensor], path: Path, metadata: Mapping[str, str] | None = None) -> None:
    """Write a flat tensor dict as safetensors (atomically), with its content hash in the metadata."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    plain = save(tensors)
    header, body = _split(plain, Path(path), "")
    meta = {**dict(metadata or {}), CONTENT_KEY: _content_sha256(header, body)}
    atomic_write_bytes(Path(path), save(tensors, metadata=meta))


def load_safetensors(path: Path, fix: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, its content hash checked when it has one."""
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"{path} not found; {fix}")
    data = path.read_bytes()
    header, body = _split(data, path, fix)
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise WeightsFileError(f"{path} is not a readable safetensors file (bad metadata); {fix}")
    expected = metadata.get(CONTENT_KEY)
    if expected is not None and _content_sha256(header, body) != expected:
        raise WeightsFileError(f"{path} is damaged: its tensors no longer match the content hash stored in it; {fix}")
    try:
        tensors = load(data)
    except Exception as exc:  # SafetensorError and friends
        raise WeightsFileError(f"{path} is not a readable safetensors file ({_first_line(exc)}); {fix}") from None
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def load_state_file(path: Path, fix: str) -> object:
    """A ``.safetensors`` file's tensors, or a torch file's object; both checked as above."""
    path = Path(path)
    if path.suffix == SAFETENSORS_SUFFIX:
        return load_safetensors(path, fix)[0]
    return torch_load(path, fix)
