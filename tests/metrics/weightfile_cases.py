"""Damaged and crafted weight files, shared by the tests of every loader."""

from __future__ import annotations

import builtins
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch


class Evil:
    """Pickles to a call of ``open(marker, "w")``: loading it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    """A torch file whose pickle would run code (a state dict with one crafted entry)."""
    torch.save({"weight": torch.zeros(2), "payload": Evil(marker)}, path)
    return path


def flip_tensor_byte(source: Path, dest: Path) -> Path:
    """``source`` with two bytes flipped inside the first tensor's data (torch zip or safetensors)."""
    data = bytearray(source.read_bytes())
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            info = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size >= 64)
        name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
        extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
        at = info.header_offset + 30 + name_len + extra_len + 40
    else:
        at = 8 + int.from_bytes(data[:8], "little") + 40
    data[at] ^= 0x5A
    data[at + 1] ^= 0x01
    dest.write_bytes(bytes(data))
    return dest


def truncated(source: Path, dest: Path) -> Path:
    dest.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return dest


def empty(dest: Path) -> Path:
    dest.write_bytes(b"")
    return dest


def foreign_zip(dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as archive:
        archive.writestr("notes/readme.txt", json.dumps({"not": "a checkpoint"}))
    return dest


def garbage(dest: Path) -> Path:
    dest.write_bytes(b"\x00\x01not a checkpoint at all" * 10)
    return dest


#: Every way to break a good file ``source`` into ``dest`` (name -> maker).
BREAKERS: dict[str, Callable[[Path, Path], Path]] = {
    "flipped": flip_tensor_byte,
    "truncated": truncated,
    "empty": lambda source, dest: empty(dest),
    "foreign-zip": lambda source, dest: foreign_zip(dest),
    "garbage": lambda source, dest: garbage(dest),
}


def assert_one_clean_line(message: str, path: Path) -> None:
    """The project's standard for bad input: one line, naming the file, never torch's unsafe advice."""
    assert "\n" not in message, message
    assert str(path) in message, message
    assert "weights_only=False" not in message and "weights_only" not in message, message
