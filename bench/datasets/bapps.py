"""BAPPS 2AFC (LPIPS's dataset): ``SUBSET/{ref,p0,p1}/*.png`` and ``SUBSET/judge/*.npy``.

``judge`` holds the fraction of people who preferred p1, so ``p = judge`` with x0 = p0, x1 = p1.
``--dataset bapps:ROOT`` accepts either one subset folder (e.g. ``2afc/val/traditional``), scored as
split ``all``, or a folder of subsets (e.g. ``2afc/val``) with ``--split SUBSET``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lipsim_bench.datasets.base import TripletRecord, TwoAFCDataset, register_dataset
from lipsim_bench.datasets.paths import RootGuard
from lipsim_bench.errors import DatasetError

BAPPS_FOLDERS = ("ref", "p0", "p1", "judge")


def _is_subset(folder: Path) -> bool:
    return all((folder / sub).is_dir() for sub in BAPPS_FOLDERS)


def _read_judgment(path: Path) -> float:
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"judgment unreadable: {path} ({exc}); re-download the dataset") from None
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    if value.size != 1 or not np.isfinite(value[0]) or not 0.0 <= value[0] <= 1.0:
        raise DatasetError(f"judgment {path} must hold one fraction in [0, 1], got {value.tolist()}")
    return float(value[0])


def bapps_subset(folder: Path, group: str, root: Path | None = None) -> list[TripletRecord]:
    """Triplets of one subset folder, in sorted file-name order; every file must resolve inside ``root``."""
    if not _is_subset(folder):
        missing = [s for s in BAPPS_FOLDERS if not (folder / s).is_dir()]
        raise DatasetError(f"{folder} is not a BAPPS 2AFC subset: missing folder(s) {', '.join(missing)}")
    guard = RootGuard(root if root is not None else folder)
    judges = sorted((folder / "judge").glob("*.npy"))
    if not judges:
        raise DatasetError(f"{folder / 'judge'} holds no .npy judgments")
    records = []
    for j in judges:
        ref, x0, x1 = (guard.check(folder / sub / f"{j.stem}.png", "BAPPS image") for sub in ("ref", "p0", "p1"))
        p = _read_judgment(guard.check(j, "BAPPS judgment"))
        records.append(TripletRecord(id=f"{group}/{j.stem}", ref=ref, x0=x0, x1=x1, p=p, group=group))
    return records


@register_dataset(
    "bapps",
    splits=(),  # the subsets found under ROOT; checked in the builder
    default_split="all",
    needs_root=True,
    description="LPIPS's BAPPS 2AFC: bapps:ROOT/SUBSET, or bapps:ROOT with --split SUBSET (64x64 patches)",
)
def bapps_dataset(root: Path | None, split: str) -> TwoAFCDataset:
    assert root is not None
    if _is_subset(root):
        if split not in ("all", root.name):
            raise DatasetError(f"{root} is a single BAPPS subset; use --split all (or point --dataset at its parent)")
        return TwoAFCDataset("bapps", root.name, bapps_subset(root, root.name, root), image_size=None)
    subsets = sorted(d.name for d in root.iterdir() if d.is_dir() and _is_subset(d))
    if not subsets:
        raise DatasetError(f"{root} holds no BAPPS subsets (folders with ref/, p0/, p1/, judge/)")
    chosen = subsets if split == "all" else [split]
    if split != "all" and split not in subsets:
        raise DatasetError(f"unknown split {split!r} for bapps:{root}; choose one of: all, {', '.join(subsets)}")
    records = [r for name in chosen for r in bapps_subset(root / name, name, root)]
    return TwoAFCDataset("bapps", split, records, image_size=None)
