"""NIGHT's ``data.csv`` (and that of every dataset laid out like it): read, validate, select a split.

Layout: ``ROOT/data.csv`` plus the image paths it lists (``ref/...``, ``distort/..._0.png`` = x0 =
left, ``distort/..._1.png`` = x1 = right). Columns are read by name. Like every published loader,
only triplets with ``votes >= 6`` are kept. ``p = right_vote``: the fraction of people who judged
the right image (x1) closer to the reference.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.datasets.base import TripletRecord, TwoAFCDataset
from bench.errors import DatasetError

REQUIRED_COLUMNS = ("id", "right_vote", "votes", "ref_path", "left_path", "right_path", "split", "is_imagenet")
MIN_VOTES = 6
NIGHT_SPLITS = ("train", "val", "test_imagenet", "test_no_imagenet", "test")
NIGHT_IMAGE_SIZE = 224


def _as_bool(column: pd.Series) -> pd.Series:
    """``is_imagenet`` is written as True/False, true/false or 1/0 depending on the tool that saved it."""
    return column.astype(str).str.strip().str.lower().isin({"true", "1", "1.0", "yes"})


def read_night_csv(root: Path) -> pd.DataFrame:
    """data.csv with the votes filter applied and a ``group`` column (train, val, test_[no_]imagenet)."""
    csv_path = root / "data.csv"
    if not csv_path.is_file():
        raise DatasetError(
            f"data.csv not found in {root}; point --dataset at the folder that holds NIGHT's data.csv, "
            f"or fetch NIGHT into it with `python run_bench.py fetch night --root {root}`"
        )
    try:
        frame = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"{csv_path} is not a readable CSV ({exc}); re-download the dataset "
            f"(NIGHT: delete it and run `python run_bench.py fetch night --root {root}`)"
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{csv_path} lacks column(s) {', '.join(missing)}; expected NIGHT's columns {', '.join(REQUIRED_COLUMNS)}"
        )
    for column in ("right_vote", "votes"):
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().argmax())
            raise DatasetError(f"{csv_path}: column {column} has a non-numeric value on data row {row + 1}")
        frame[column] = values
    frame = frame[frame["votes"] >= MIN_VOTES].copy()
    bad = frame[(frame["right_vote"] < 0) | (frame["right_vote"] > 1)]
    if len(bad):
        raise DatasetError(f"{csv_path}: right_vote must be a fraction in [0, 1]; triplet {bad['id'].iloc[0]} has {bad['right_vote'].iloc[0]}")
    is_imagenet = _as_bool(frame["is_imagenet"])
    split = frame["split"].astype(str).str.strip()
    frame["group"] = split.where(split != "test", "test_no_imagenet")
    frame.loc[(split == "test") & is_imagenet, "group"] = "test_imagenet"
    return frame


def select_split(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """Rows of one split; ``test`` is the union of its two halves (each keeps its group)."""
    if split == "test":
        return frame[frame["group"].isin(["test_imagenet", "test_no_imagenet"])]
    return frame[frame["group"] == split]


def night_like_dataset(root: Path, split: str, *, name: str, image_size: int | None) -> TwoAFCDataset:
    """A :class:`TwoAFCDataset` over any folder laid out like NIGHT."""
    rows = select_split(read_night_csv(root), split)
    if rows.empty:
        raise DatasetError(f"split {split!r} of {root / 'data.csv'} has no triplets with votes >= {MIN_VOTES}")
    records = [
        TripletRecord(
            id=str(row.id),
            ref=root / str(row.ref_path),
            x0=root / str(row.left_path),
            x1=root / str(row.right_path),
            p=float(row.right_vote),
            group=str(row.group),
        )
        for row in rows.itertuples(index=False)
    ]
    return TwoAFCDataset(name, split, records, image_size)
