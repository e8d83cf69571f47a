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


#: A judgment is a number: floats or integers (BAPPS stores float64 arrays of shape (1,)); never text,
#: booleans, complex numbers, records or pickled objects.
NUMERIC_KINDS = "fiu"
FIX = "re-download the dataset (each judge/*.npy holds one number in [0, 1]: the fraction that preferred p1)"


def _read_judgment(path: Path) -> float:
    """The fraction in one judge file, or one line naming the file; numpy's own advice (pickles,
    ``allow_pickle``) never reaches the user, and a pickle is never loaded (it could run code)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
        if head != b"\x93NUMPY":  # numpy would call any other file "pickled data" and advise loading it unsafely
            what = (
                "an .npz archive, not a .npy array"
                if head.startswith(b"PK")
                else ("empty" if not head else "not a .npy array")
            )
            raise DatasetError(f"judgment {path} is {what}; {FIX}")
        value = np.load(path, allow_pickle=False)
    except ValueError as exc:
        pickled = "allow_pickle" in str(exc) or "pickled" in str(exc)
        why = (
            "is pickled data, not a numeric .npy array (pickles are never loaded)"
            if pickled
            else "is not a readable .npy array"
        )
        raise DatasetError(f"judgment {path} {why}; {FIX}") from None
    except (OSError, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "empty or truncated"
        raise DatasetError(f"judgment {path} cannot be read ({reason}); {FIX}") from None
    if not isinstance(value, np.ndarray):
        raise DatasetError(f"judgment {path} is not a .npy array; {FIX}")
    if value.dtype.kind not in NUMERIC_KINDS:
        raise DatasetError(f"judgment {path} holds {value.dtype} values, not numbers; {FIX}")
    flat = value.astype(np.float64).reshape(-1)
    if flat.size != 1 or not np.isfinite(flat[0]) or not 0.0 <= flat[0] <= 1.0:
        shown = flat[:4].tolist() + (["..."] if flat.size > 4 else [])
        raise DatasetError(
            f"judgment {path} must hold one fraction in [0, 1], got {shown} (shape {value.shape}); {FIX}"
        )
    return float(flat[0])


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
