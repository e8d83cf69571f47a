"""Dataset paths stay inside their root: a data.csv (or a symlink) must never make the tool read other files.

The check resolves every path (``..``, absolute paths and symlinks followed, as the OS would) and compares
it with the resolved root *before* anything asks whether the file exists, so the refusal reads the same
whether or not the outside path exists (the message shows the path as written, never where it leads).
"""

from __future__ import annotations

import os
from pathlib import Path

from lipsim_bench.errors import DatasetError

#: The end of every refusal: what to do about it.
OUTSIDE_FIX = (
    "image paths must be relative paths inside the dataset root (no '..', no absolute path, no symlink out of it)"
)


class RootGuard:
    """Resolves paths under one root, caching resolved folders (NIGHT lists ~60k files in ~200 folders)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._real_root = os.path.realpath(self.root)
        self._folders: dict[str, str] = {}

    def _resolved(self, path: str) -> str:
        """``os.path.realpath(path)``, one lstat per file once its folder is known."""
        head, name = os.path.split(path)
        if name in ("", ".", ".."):
            return os.path.realpath(path)
        folder = self._folders.get(head)
        if folder is None:
            folder = self._folders[head] = os.path.realpath(head)
        full = os.path.join(folder, name)
        return os.path.realpath(full) if os.path.islink(full) else full

    def inside(self, path: Path) -> bool:
        """Whether ``path`` resolves to something strictly inside the root."""
        try:
            real = self._resolved(os.path.join(self.root, path))
        except ValueError:  # an embedded NUL byte: no such path can be inside anything
            return False
        return real.startswith(self._real_root.rstrip(os.sep) + os.sep)

    def join(self, written: str, where: str) -> Path:
        """``root / written``, or a DatasetError naming ``where`` (file, row, column) if it leaves the root."""
        if not written.strip():
            raise DatasetError(f"{where}: the image path is blank; {OUTSIDE_FIX}")
        if not self.inside(Path(written)):
            raise DatasetError(f"{where}: path {written!r} leads outside the dataset root {self.root}; {OUTSIDE_FIX}")
        return self.root / written

    def check(self, path: Path, what: str) -> Path:
        """``path`` (already under the root by construction) if it resolves inside it; else a DatasetError."""
        if not self.inside(path):
            raise DatasetError(
                f"{what} {path} leads outside the dataset root {self.root} (a symlink or '..'); {OUTSIDE_FIX}"
            )
        return path
