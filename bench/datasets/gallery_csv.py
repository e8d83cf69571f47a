"""The CSV layout of a retrieval set (``--dataset retrieval:ROOT``), also the layout of the bundled ``sample-retrieval``.

::

    ROOT/queries.csv     id,path[,label]          one row per query image
    ROOT/gallery.csv     id,path[,label]          one row per gallery image
    ROOT/relevance.csv   query_id,gallery_id      one row per (query, relevant gallery item) pair

Paths are relative to ROOT and must stay inside it (:mod:`lipsim_bench.datasets.paths`). Every cell is read as the
text written (``007`` stays ``007``); a missing ``label`` column means blank labels. The set has one split, ``test``.
Real sets mix image sizes, so ``retrieval:ROOT`` resizes every image to 224x224 (bicubic, as NIGHT); the bundled set
is read at its own 64x64.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lipsim_bench.datasets.base import register_dataset
from lipsim_bench.datasets.gallery import GalleryDataset, GalleryRecord, QueryRecord, check_layout_request
from lipsim_bench.datasets.paths import RootGuard
from lipsim_bench.errors import DatasetError

QUERIES_CSV, GALLERY_CSV, RELEVANCE_CSV = "queries.csv", "gallery.csv", "relevance.csv"
ITEM_COLUMNS = ("id", "path")  # plus an optional "label"
RELEVANCE_COLUMNS = ("query_id", "gallery_id")
CSV_SPLITS = ("test",)
#: Real retrieval sets mix image sizes: every image is resized to this square (bicubic), as NIGHT's 224.
CSV_IMAGE_SIZE = 224
LAYOUT = (
    f"ROOT/{QUERIES_CSV} (id,path[,label]), ROOT/{GALLERY_CSV} (id,path[,label]) and "
    f"ROOT/{RELEVANCE_CSV} (query_id,gallery_id), paths relative to ROOT"
)


def read_rows(path: Path, required: tuple[str, ...], root: Path) -> list[dict[str, str]]:
    """The rows of one CSV as the text written, each with every column of its header; or one line saying why not."""
    if not path.is_file():
        raise DatasetError(f"{path.name} not found in {root}; a retrieval root holds {LAYOUT}")
    if not RootGuard(root).inside(Path(path.name)):
        raise DatasetError(
            f"{path} is a symlink that leads outside the dataset root {root}; copy the file into the root"
        )
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            table = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path} is not a readable UTF-8 CSV ({' '.join(str(exc).split())}); rewrite it") from None
    header = [c.strip() for c in table[0]] if table else []
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(f"{path} lacks column(s) {', '.join(missing)}; its header must name {', '.join(required)}")
    doubled = sorted({c for c in header if header.count(c) > 1})
    if doubled:
        raise DatasetError(f"{path} names column(s) {', '.join(doubled)} more than once; keep one of each")
    rows = []
    for number, cells in enumerate(table[1:], start=1):
        if not any(c.strip() for c in cells):
            continue  # a blank line (often the last one)
        if len(cells) != len(header):
            raise DatasetError(
                f"{path}: data row {number} has {len(cells)} cells but the header has {len(header)}; "
                "quote cells that hold commas"
            )
        rows.append({"_row": str(number), **dict(zip(header, cells))})
    if not rows:
        raise DatasetError(f"{path} holds no rows; list at least one")
    return rows


def _items(root: Path, name: str) -> list[tuple[str, Path, str]]:
    """(id, path, label) of every row of queries.csv or gallery.csv, ids non-blank and unique, paths inside ROOT."""
    path = root / name
    guard = RootGuard(root)
    items: list[tuple[str, Path, str]] = []
    seen: dict[str, str] = {}
    for row in read_rows(path, ITEM_COLUMNS, root):
        where = f"{path}: data row {row['_row']}"
        item_id = row["id"].strip()
        if not item_id:
            raise DatasetError(f"{where}: the id is blank; give every row an id")
        if item_id in seen:
            raise DatasetError(
                f"{where}: id {item_id!r} is already used by data row {seen[item_id]}; ids must be unique"
            )
        seen[item_id] = row["_row"]
        items.append(
            (
                item_id,
                guard.join(row["path"].strip(), f"{where} (id {item_id!r}), column path"),
                row.get("label", "").strip(),
            )
        )
    return items


def _relevance(root: Path, query_ids: set[str], gallery_ids: set[str]) -> dict[str, list[str]]:
    """query id -> its relevant gallery ids in file order (a pair listed twice counts once)."""
    path = root / RELEVANCE_CSV
    relevant: dict[str, list[str]] = {}
    for row in read_rows(path, RELEVANCE_COLUMNS, root):
        q, g = row["query_id"].strip(), row["gallery_id"].strip()
        where = f"{path}: data row {row['_row']}"
        if q not in query_ids:
            raise DatasetError(f"{where}: query_id {q!r} is not an id of {QUERIES_CSV}; fix the id or add the query")
        if g not in gallery_ids:
            raise DatasetError(
                f"{where}: gallery_id {g!r} (relevant to query {q!r}) is not an id of {GALLERY_CSV}; "
                "fix the id or add the image to the gallery"
            )
        listed = relevant.setdefault(q, [])
        if g not in listed:
            listed.append(g)
    return relevant


def csv_gallery_dataset(
    root: Path, split: str = "test", *, name: str = "retrieval", image_size: int | None = CSV_IMAGE_SIZE
) -> GalleryDataset:
    """A :class:`GalleryDataset` over a folder in the CSV layout (queries in queries.csv order)."""
    check_layout_request(split, CSV_SPLITS, image_size, f"{name}:{root}", "CSV")
    queries, gallery = _items(root, QUERIES_CSV), _items(root, GALLERY_CSV)
    relevant = _relevance(root, {q[0] for q in queries}, {g[0] for g in gallery})
    lonely = next((q[0] for q in queries if q[0] not in relevant), None)
    if lonely is not None:
        raise DatasetError(
            f"{root / RELEVANCE_CSV} lists no relevant gallery item for query {lonely!r}; every query needs at least "
            f"one (Recall@k is undefined without one): add a row, or drop the query from {QUERIES_CSV}"
        )
    return GalleryDataset(
        name,
        split,
        [QueryRecord(i, p, label, tuple(relevant[i])) for i, p, label in queries],
        [GalleryRecord(i, p, label) for i, p, label in gallery],
        image_size,
    )


@register_dataset(
    "retrieval",
    splits=CSV_SPLITS,
    default_split="test",
    needs_root=True,
    description=(
        "image retrieval, CSV layout: retrieval:ROOT with queries.csv, gallery.csv (id,path[,label]) and "
        "relevance.csv (query_id,gallery_id); images resized to 224x224"
    ),
    task="retrieval",
)
def retrieval_dataset(root: Path | None, split: str) -> GalleryDataset:
    assert root is not None
    return csv_gallery_dataset(root, split)
