"""NIGHT's ``data.csv`` (and that of every dataset laid out like it): read, validate, select a split.

Layout: ``ROOT/data.csv`` plus the image paths it lists (``ref/...``, ``distort/..._0.png`` = x0 =
left, ``distort/..._1.png`` = x1 = right). Columns are read by name. Like every published loader,
only triplets with ``votes >= 6`` are kept. ``p = right_vote``: the fraction of people who judged
the right image (x1) closer to the reference.

Every cell is read as the text written (ids stay ``007``; see :mod:`~lipsim_bench.datasets.night.cells` for the
rule of each column) and every row is checked, also those the votes filter drops; every image path must
resolve inside ROOT (:mod:`lipsim_bench.datasets.paths`), checked before anything looks at the file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from lipsim_bench.datasets.base import TripletRecord, TwoAFCDataset
from lipsim_bench.datasets.night.cells import Cells, parse_bool, parse_count, parse_fraction, parse_split
from lipsim_bench.datasets.paths import RootGuard
from lipsim_bench.errors import DatasetError

REQUIRED_COLUMNS = ("id", "right_vote", "votes", "ref_path", "left_path", "right_path", "split", "is_imagenet")
MIN_VOTES = 6
NIGHT_SPLITS = ("train", "val", "test_imagenet", "test_no_imagenet", "test")
NIGHT_IMAGE_SIZE = 224


PATH_COLUMNS = ("ref_path", "left_path", "right_path")


def _read_text(csv_path: Path, root: Path) -> pd.DataFrame:
    """Every cell as the text written in the file (no type inference, no NaN for blanks)."""
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, csv.Error, OSError) as exc:
        raise DatasetError(
            f"{csv_path} is not a readable CSV ({' '.join(str(exc).split()) or type(exc).__name__}); re-download the dataset "
            f"(NIGHT: delete it and run `python run_bench.py fetch night --root {root}`)"
        ) from None
    doubled = sorted({c for c in header if header.count(c) > 1})
    if doubled:
        raise DatasetError(f"{csv_path} names column(s) {', '.join(doubled)} more than once; keep one of each")
    return frame.fillna("")


def _paths(cells: Cells, root: Path, column: str) -> list[str]:
    """The column's paths as written, each refused unless it resolves inside ``root`` (before any existence check)."""
    guard = RootGuard(root)
    texts = [str(t) for t in cells.frame[column]]
    for row, text in enumerate(texts):
        guard.join(text, cells.where(row, column))
    return texts


def read_night_table(root: Path) -> pd.DataFrame:
    """Every row of data.csv, parsed and checked, with a ``group`` column (train, val, test_[no_]imagenet)."""
    csv_path = root / "data.csv"
    if not csv_path.is_file():
        raise DatasetError(
            f"data.csv not found in {root}; point --dataset at the folder that holds NIGHT's data.csv, "
            f"or fetch NIGHT into it with `python run_bench.py fetch night --root {root}`"
        )
    if not RootGuard(root).inside(Path("data.csv")):
        raise DatasetError(
            f"{csv_path} is a symlink that leads outside the dataset root {root}; copy the file into the root"
        )
    frame = _read_text(csv_path, root)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{csv_path} lacks column(s) {', '.join(missing)}; expected NIGHT's columns {', '.join(REQUIRED_COLUMNS)}"
        )
    cells = Cells(csv_path, frame)
    table = pd.DataFrame({"id": cells.unique_ids()})
    table["votes"] = cells.parse("votes", parse_count)
    table["right_vote"] = cells.parse("right_vote", parse_fraction)
    if "left_vote" in frame.columns:
        table["left_vote"] = cells.parse("left_vote", parse_fraction)
        off = (table["left_vote"] + table["right_vote"] - 1.0).abs() > 1e-6
        if off.any():
            i = int(off.to_numpy().argmax())
            raise DatasetError(
                f"{csv_path}: data row {i + 1} (triplet {table['id'].iloc[i]!r}): left_vote {table['left_vote'].iloc[i]:g} and "
                f"right_vote {table['right_vote'].iloc[i]:g} do not sum to 1; they are the two sides' vote fractions"
            )
    for column in PATH_COLUMNS:
        table[column] = _paths(cells, root, column)
    split = pd.Series(cells.parse("split", parse_split), dtype=object)
    is_imagenet = pd.Series(cells.parse("is_imagenet", parse_bool), dtype=bool)
    table["split"], table["is_imagenet"] = split, is_imagenet
    table["group"] = split.where(split != "test", "test_no_imagenet")
    table.loc[(split == "test") & is_imagenet, "group"] = "test_imagenet"
    return table


def read_night_csv(root: Path) -> pd.DataFrame:
    """data.csv with the votes filter applied (see :func:`read_night_table` for what is checked)."""
    table = read_night_table(root)
    return table[table["votes"] >= MIN_VOTES].copy()


def select_split(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """Rows of one split; ``test`` is the union of its two halves (each keeps its group)."""
    if split == "test":
        return frame[frame["group"].isin(["test_imagenet", "test_no_imagenet"])]
    return frame[frame["group"] == split]


def _no_rows(table: pd.DataFrame, split: str, root: Path) -> DatasetError:
    """Why a split is empty: absent from the file (say which splits it has), or every triplet under the votes filter."""
    csv_path = root / "data.csv"
    if select_split(table, split).empty:
        counts = table["group"].value_counts().sort_index()
        held = ", ".join(f"{group} {n}" for group, n in counts.items()) or "no rows"
        return DatasetError(f"{csv_path} has no triplets of split {split!r} (it holds: {held}); choose another --split")
    return DatasetError(f"split {split!r} of {csv_path} has triplets, but none with votes >= {MIN_VOTES}")


def night_like_dataset(root: Path, split: str, *, name: str, image_size: int | None) -> TwoAFCDataset:
    """A :class:`TwoAFCDataset` over any folder laid out like NIGHT."""
    table = read_night_table(root)
    rows = select_split(table[table["votes"] >= MIN_VOTES], split)
    if rows.empty:
        raise _no_rows(table, split, root)
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
