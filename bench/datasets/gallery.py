"""The retrieval / kNN dataset kind: queries, a gallery, and each query's relevant gallery items.

One class serves every layout (the CSV layout ``retrieval:ROOT``, labelled folders ``knn:ROOT`` and the bundled
``sample-retrieval`` / ``sample-knn``): a loader yields the QUERIES (so ``--n``, ``--every`` and torchrun shards cut
the queries), and the task reaches the whole gallery through :meth:`GalleryDataset.gallery_images`. For retrieval the
relevant items are listed; for kNN they are the gallery items of the query's label.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lipsim_bench.datasets.base import DecodedImages
from lipsim_bench.datasets.content import content_hashes
from lipsim_bench.errors import DatasetError


@dataclass(frozen=True)
class GalleryRecord:
    """One gallery image before it is read."""

    id: str
    path: Path
    label: str


@dataclass(frozen=True)
class QueryRecord:
    """One query before it is read, with the ids of the gallery items that count as a hit for it."""

    id: str
    path: Path
    label: str
    relevant: tuple[str, ...]


def _duplicate(ids: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return None


class GalleryDataset(DecodedImages, Dataset):
    """Queries read lazily (``len`` and indexing are over the queries); the gallery is read by index on demand."""

    def __init__(
        self,
        name: str,
        split: str,
        queries: list[QueryRecord],
        gallery: list[GalleryRecord],
        image_size: int | None,
    ) -> None:
        self.name = name
        self.split = split
        self.queries = list(queries)
        self.gallery = list(gallery)
        self.image_size = image_size
        self._check_records()
        position = {g.id: i for i, g in enumerate(self.gallery)}
        indices: dict[int, np.ndarray] = {}  # by tuple identity: the kNN layouts share one tuple per label
        for q in self.queries:
            if id(q.relevant) not in indices:
                indices[id(q.relevant)] = np.fromiter((position[r] for r in q.relevant), np.int64)
        self._relevant = [indices[id(q.relevant)] for q in self.queries]
        self._init_images()

    def _check_records(self) -> None:
        """One line for each way the lists cannot make a retrieval set (before any image is read)."""
        where = f"{self.name}/{self.split}"
        if not self.queries:
            raise DatasetError(f"{where} has no queries; a retrieval set needs at least one query image")
        if not self.gallery:
            raise DatasetError(f"{where} has an empty gallery; a retrieval set needs gallery images to search")
        for what, ids in (("query", [q.id for q in self.queries]), ("gallery", [g.id for g in self.gallery])):
            doubled = _duplicate(ids)
            if doubled is not None:
                raise DatasetError(
                    f"{where}: {what} id {doubled!r} appears more than once; give every {what} its own id"
                )
        known = {g.id for g in self.gallery}
        checked: set[int] = set()  # tuples already checked (shared by every query of a label)
        for q in self.queries:
            if id(q.relevant) in checked:
                continue
            checked.add(id(q.relevant))
            if not q.relevant:
                raise DatasetError(
                    f"{where}: query {q.id!r} has no relevant gallery item; every query needs at least one "
                    "(Recall@k and the attacks are undefined without one): add one, or drop the query"
                )
            missing = next((r for r in q.relevant if r not in known), None)
            if missing is not None:
                raise DatasetError(
                    f"{where}: query {q.id!r} lists relevant item {missing!r}, which is not in the gallery; "
                    "relevant ids must be gallery ids"
                )

    # images -------------------------------------------------------------------------------------------------

    def _first_image(self) -> Path:
        return self.queries[0].path  # without resizing, every query and gallery image must have its size

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, index: int) -> dict[str, object]:
        rec = self.queries[index]
        relevant = torch.zeros(len(self.gallery), dtype=torch.bool)
        relevant[torch.from_numpy(self._relevant[index])] = True
        return {
            "index": index,  # position in the dataset: shards are merged back in this order
            "id": rec.id,
            "query": self._image(rec.path),
            "label": rec.label,
            "group": self.split,
            "relevant": relevant,
        }

    def gallery_images(self, indices: Sequence[int]) -> torch.Tensor:
        """Gallery images ``(k, 3, H, W)`` in [0, 1], in the order of ``indices``."""
        if len(indices) == 0:
            raise DatasetError(f"{self.name}/{self.split}: gallery_images was asked for no image")
        return torch.stack([self._image(self.gallery[int(i)].path) for i in indices])

    # what generic code reads ----------------------------------------------------------------------------------

    @property
    def records(self) -> list[QueryRecord]:
        """The scored items (the queries): generic code reads their number and ids."""
        return self.queries

    @property
    def gallery_ids(self) -> list[str]:
        return [g.id for g in self.gallery]

    @property
    def gallery_labels(self) -> list[str]:
        return [g.label for g in self.gallery]

    @property
    def groups(self) -> list[str]:
        """One group per split: every query scores in it."""
        return [self.split]

    def _with(self, queries: list[QueryRecord]) -> GalleryDataset:
        return GalleryDataset(self.name, self.split, queries, self.gallery, self.image_size)

    def head(self, n: int | None) -> GalleryDataset:
        """The first ``n`` queries (all when None), searched in the whole gallery."""
        if n is None:
            return self
        if n <= 0:
            raise DatasetError(f"--n must be a positive number of queries, got {n}")
        return self._with(self.queries[:n])

    def every(self, k: int) -> GalleryDataset:
        """Every ``k``-th query (the 1st, the (k+1)-th, ...), searched in the whole gallery."""
        if k <= 0:
            raise DatasetError(f"--every must be a positive integer, got {k}")
        return self if k == 1 else self._with(self.queries[::k])

    def fingerprint(self) -> str:
        """The content of the selected queries and the whole gallery: ids, image paths relative to their common root,
        labels, relevance, and the sha256 of each image file (as :meth:`TwoAFCDataset.fingerprint`): the same data
        elsewhere reuses records; another relevance list, label or image bytes does not."""
        paths = [str(r.path) for r in (*self.queries, *self.gallery)]
        root = os.path.commonpath(paths)
        digest = hashlib.sha256(f"gallery|{self.name}|{self.split}|{self.image_size}".encode())
        hashes = content_hashes()
        files: dict[str, str] = {}

        def sha(path: Path) -> str:
            return files.setdefault(str(path), hashes.sha256(path) or "missing")

        relevance: dict[int, str] = {}  # digest of each relevant tuple, once per tuple object

        def listed(q: QueryRecord) -> str:
            if id(q.relevant) not in relevance:
                relevance[id(q.relevant)] = hashlib.sha256(json.dumps(list(q.relevant)).encode()).hexdigest()
            return relevance[id(q.relevant)]

        for q in self.queries:
            row = ["query", q.id, os.path.relpath(str(q.path), root), q.label, listed(q), sha(q.path)]
            digest.update(json.dumps(row).encode())
        for g in self.gallery:
            digest.update(
                json.dumps(["gallery", g.id, os.path.relpath(str(g.path), root), g.label, sha(g.path)]).encode()
            )
        hashes.save()
        return f"sha256:{digest.hexdigest()[:16]}"

    def check_files(self) -> None:
        """Fail before any computation if a query or gallery image is missing (reading them is a later, lazy step)."""
        for what, recs in (("query", self.queries), ("gallery item", self.gallery)):
            for rec in recs:
                if not rec.path.is_file():
                    raise DatasetError(
                        f"image missing: {rec.path} ({what} {rec.id} of {self.name}/{self.split}); "
                        "check the dataset root, or re-download the dataset"
                    )


def check_layout_request(split: str, splits: tuple[str, ...], image_size: int | None, where: str, layout: str) -> None:
    """A user layout's split and image size, before any file is read (one line each)."""
    if split not in splits:
        raise DatasetError(f"unknown split {split!r} for {where}; the {layout} layout has one split: {splits[0]}")
    if image_size is not None and image_size < 1:
        raise DatasetError(f"image size must be a positive number of pixels, got {image_size}")
