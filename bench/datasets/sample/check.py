"""The built ``sample`` set checked against its own manifest at run time: a deleted or altered file is found
before it can become a number (and the set is rebuilt: it was built here, there is nothing to download).

Cheap on every run: each file's sha256 comes from the content-hash cache
(:mod:`lipsim_bench.datasets.content`) while its size, times and inode hold, so only changed files are read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lipsim_bench.datasets.content import content_hashes


def changed_file(root: Path, manifest: dict[str, Any]) -> str | None:
    """The first file (relative to ``root``) that is missing or differs from ``manifest``; None if all match.

    ``manifest["images"]`` maps every image to its sha256; ``manifest["files"]`` does the same for data.csv
    and meta.csv. A manifest without them (of an older build) counts as a changed manifest.json."""
    images, tables = manifest.get("images"), manifest.get("files")
    if not isinstance(images, dict) or not isinstance(tables, dict):
        return "manifest.json"
    hashes = content_hashes()
    try:
        base = str(root)
        for rel, expected in {**tables, **images}.items():
            if hashes.sha256(os.path.join(base, rel)) != expected:
                return str(rel)
        return None
    finally:
        hashes.save()
