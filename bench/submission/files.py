"""The files an entry names: paths relative to the entry, their sha256, and copies into a submission folder.

An entry is handed over as a folder (the entry JSON beside ``records/``); every path in it is relative to the
entry file and may not leave that folder, so a validator never reads a file the submitter did not hand in.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from lipsim_bench.errors import BenchError
from lipsim_bench.io import sha256_file


def relative(path: Path, base: Path) -> str:
    """``path`` relative to the folder ``base``, with / separators (what an entry stores)."""
    return PurePosixPath(Path(path).resolve().relative_to(Path(base).resolve()).as_posix()).as_posix()


def resolve_in(base: Path, rel: str) -> Path | None:
    """The file an entry's relative path names inside ``base``; None when it would leave ``base``."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or "\\" in rel:
        return None
    full = (Path(base) / Path(*pure.parts)).resolve()
    root = Path(base).resolve()
    return full if full == root or root in full.parents else None


def digest(path: Path) -> str:
    return sha256_file(path)


def place(source: Path, folder: Path) -> Path:
    """``source`` copied into ``folder`` (nothing copied when it is already there); a different file of the same
    name already there is refused, never overwritten: it is another entry's evidence."""
    target = Path(folder) / source.name
    if target.resolve() == source.resolve():
        return target
    if target.exists():
        if digest(target) != digest(source):
            raise BenchError(f"{target} already exists with other content; write the entry into another folder (--out)")
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    except OSError as exc:
        raise BenchError(f"could not copy {source} to {target}: {exc.strerror or exc}") from None
    return target
