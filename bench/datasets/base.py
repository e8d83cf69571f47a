"""The 2AFC dataset protocol and the dataset registry.

Every dataset yields triplets ``{"id", "ref", "x0", "x1", "p", "group"}`` where ``p`` is the fraction
of people who judged ``x1`` closer to ``ref`` and ``group`` names the part of the split the triplet
belongs to (NIGHT's test split has two halves, scored separately and size-weighted).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from lipsim_bench.datasets.content import content_hashes
from lipsim_bench.datasets.images import load_image_uint8, to_unit_float
from lipsim_bench.errors import DatasetError
from lipsim_bench.registry import Registry


@dataclass(frozen=True)
class TripletRecord:
    """One triplet before its images are read: paths, human judgment, and the group it scores in."""

    id: str
    ref: Path
    x0: Path
    x1: Path
    p: float
    group: str


#: Decoded images are kept in memory (uint8) up to this many bytes per process: a run reads every image
#: once per unit (natural, certified, each attack eps), and decoding NIGHT's 768x768 PNGs costs more than
#: a forward pass of most metrics.
IMAGE_CACHE_BYTES = 4 << 30


class DecodedImages:
    """Images read through a decoded-image cache, of the one size a batch can stack: shared by every dataset kind
    (triplets, retrieval queries and galleries). A subclass sets ``name`` and ``image_size``, calls
    :meth:`_init_images` and names the image every other must match in size (:meth:`_first_image`)."""

    name: str
    image_size: int | None

    def _init_images(self) -> None:
        self._cache: dict[Path, torch.Tensor] = {}
        self._cache_bytes = 0
        self._first_shape: tuple[int, ...] | None = None  # of _first_image(), once read

    def _first_image(self) -> Path:
        raise NotImplementedError

    def _uint8(self, path: Path) -> torch.Tensor:
        """The decoded image; decoded once and kept while the cache is under its budget."""
        image = self._cache.get(path)
        if image is None:
            image = load_image_uint8(path, self.image_size)
            if self._cache_bytes + image.numel() <= IMAGE_CACHE_BYTES:
                self._cache[path] = image
                self._cache_bytes += image.numel()
        return image

    def _image(self, path: Path) -> torch.Tensor:
        """The image in [0, 1], of the one size a batch can stack (see :meth:`_check_size`)."""
        image = self._uint8(path)
        if self.image_size is None:
            self._check_size(path, image)
        return to_unit_float(image)

    def _check_size(self, path: Path, image: torch.Tensor) -> None:
        """Without resizing, every image must have the size of the first item's (in every process)."""
        first = self._first_image()
        if self._first_shape is None:
            self._first_shape = tuple(image.shape if path == first else self._uint8(first).shape)
        expected = self._first_shape
        if image.shape != expected:
            raise DatasetError(
                f"image {path} is {image.shape[2]}x{image.shape[1]} but {first} is {expected[2]}x{expected[1]}: "
                f"{self.name} is not resized, so all its images must have one size (a batch cannot mix sizes); "
                "resize the images to one size"
            )


class TwoAFCDataset(DecodedImages, Dataset):
    """Triplets read lazily from image files; the same class serves NIGHT, BAPPS and the sample set."""

    def __init__(self, name: str, split: str, records: list[TripletRecord], image_size: int | None) -> None:
        self.name = name
        self.split = split
        self.records = records
        self.image_size = image_size
        self._init_images()

    def _first_image(self) -> Path:
        return self.records[0].ref

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, object]:
        rec = self.records[index]
        return {
            "index": index,  # position in the dataset: shards are merged back in this order
            "id": rec.id,
            "ref": self._image(rec.ref),
            "x0": self._image(rec.x0),
            "x1": self._image(rec.x1),
            "p": torch.tensor(rec.p, dtype=torch.float32),
            "group": rec.group,
        }

    @property
    def groups(self) -> list[str]:
        """Group names in order of first appearance."""
        return list(dict.fromkeys(r.group for r in self.records))

    def head(self, n: int | None) -> TwoAFCDataset:
        """The first ``n`` triplets in file order (all of them when ``n`` is None)."""
        if n is None:
            return self
        if n <= 0:
            raise DatasetError(f"--n must be a positive number of triplets, got {n}")
        return TwoAFCDataset(self.name, self.split, self.records[:n], self.image_size)

    def every(self, k: int) -> TwoAFCDataset:
        """Every ``k``-th triplet (the 1st, the (k+1)-th, ...): a subsample spread over the whole split, so an
        expensive evaluation (smoothing) sees every part of it, not only its first triplets."""
        if k <= 0:
            raise DatasetError(f"--every must be a positive integer, got {k}")
        return self if k == 1 else TwoAFCDataset(self.name, self.split, self.records[::k], self.image_size)

    def fingerprint(self) -> str:
        """The content of the selected triplets: ids, image paths relative to their common root, p,
        groups, and the sha256 of each image file.

        Part of every unit key instead of the root's path: the same data elsewhere reuses records;
        another data.csv, other votes, or an image replaced by other bytes (even of the same size, with
        its modification time kept) does not. Each file is hashed once and remembered by path, size,
        times and inode (:mod:`lipsim_bench.datasets.content`), so a rerun reads no image.
        """
        paths = [str(p) for rec in self.records for p in (rec.ref, rec.x0, rec.x1)]
        root = os.path.commonpath(paths) if paths else ""
        digest = hashlib.sha256(f"{self.name}|{self.split}|{self.image_size}".encode())
        hashes = content_hashes()
        files: dict[str, str] = {}
        for rec in self.records:
            rel = [os.path.relpath(str(p), root) for p in (rec.ref, rec.x0, rec.x1)]
            shas = [files.setdefault(str(p), hashes.sha256(p) or "missing") for p in (rec.ref, rec.x0, rec.x1)]
            digest.update(json.dumps([rec.id, *rel, repr(float(rec.p)), rec.group, shas]).encode())
        hashes.save()
        return f"sha256:{digest.hexdigest()[:16]}"

    def check_files(self) -> None:
        """Fail before any computation if an image is missing (reading them is a later, lazy step)."""
        for rec in self.records:
            for path in (rec.ref, rec.x0, rec.x1):
                if not path.is_file():
                    raise DatasetError(
                        f"image missing: {path} (triplet {rec.id} of {self.name}/{self.split}); "
                        "check the dataset root, or re-download the dataset"
                    )


DatasetBuilder = Callable[..., TwoAFCDataset]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset family: how to build it and which splits it has."""

    name: str
    builder: DatasetBuilder
    splits: tuple[str, ...]
    default_split: str
    needs_root: bool
    description: str
    fetch: Callable[[Path | None, str, int | None], object] | None = None  # downloads what (root, split, n) needs
    fetch_plan: Callable[[Path | None, str, int | None], tuple[list[str], int | None]] | None = (
        None  # offline: what fetch would do
    )
    #: The task its items are scored by (lipsim_bench.tasks): "2afc" for triplets, "retrieval", "knn", ...
    task: str = "2afc"
    #: Its default attack radii per norm: an l2 radius means less at a higher resolution, so each dataset says its own.
    attack_eps: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


#: Attack radii of a dataset that names none: the LipSim paper's l2 radii (3x224x224 inputs) and Croce et al.'s
#: l-inf 4/255 bracketed by 2/255 and 8/255 (l-inf radii do not depend on resolution).
FALLBACK_ATTACK_EPS: dict[str, tuple[float, ...]] = {"l2": (0.5, 1.0, 2.0, 3.0), "linf": (2 / 255, 4 / 255, 8 / 255)}

DATASETS: Registry[DatasetSpec] = Registry(
    "dataset", builtins=("lipsim_bench.datasets.*",), error=DatasetError, hint="see `python run_bench.py list`"
)


def register_dataset(
    name: str,
    *,
    splits: tuple[str, ...],
    default_split: str,
    needs_root: bool,
    description: str,
    fetch: Callable[[Path | None, str, int | None], object] | None = None,
    fetch_plan: Callable[[Path | None, str, int | None], tuple[list[str], int | None]] | None = None,
    task: str = "2afc",
    attack_eps: Mapping[str, tuple[float, ...]] | None = None,
) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Register ``builder(root: Path | None, split: str) -> Dataset`` under ``name``.

    ``fetch(root, split, n)`` downloads the files a run on ``split`` (first ``n`` items) needs;
    ``fetch_plan(root, split, n)`` says offline what it would download, and how many items. ``task`` names the
    task that scores its items; ``attack_eps`` its default attack radii per norm (the fallback's where it names none).
    """
    radii = {norm: tuple(float(e) for e in values) for norm, values in (attack_eps or {}).items()}

    def decorator(builder: DatasetBuilder) -> DatasetBuilder:
        DATASETS.add(
            name,
            DatasetSpec(name, builder, splits, default_split, needs_root, description, fetch, fetch_plan, task, radii),
            same=lambda old, new: old.builder is new.builder,
        )
        return builder

    return decorator


def dataset_attack_eps(dataset: str, norm: str) -> tuple[float, ...]:
    """The default attack radii of a dataset family (``NAME`` or ``NAME:ROOT``) for ``norm``; an unregistered name
    (a record of a plugin's dataset not loaded now) gets the fallback's."""
    name = dataset.partition(":")[0]
    own = DATASETS.get(name).attack_eps if name in DATASETS else {}
    return tuple(own.get(norm) or FALLBACK_ATTACK_EPS[norm])


def dataset_task(dataset: str) -> str:
    """The task of a dataset family (``NAME`` or ``NAME:ROOT``); 2AFC for a name not registered."""
    name = dataset.partition(":")[0]
    return DATASETS.get(name).task if name in DATASETS else "2afc"


def list_datasets() -> list[DatasetSpec]:
    """Registered dataset families."""
    return [spec for _, spec in DATASETS.items()]


def parse_dataset_arg(spec: str) -> tuple[DatasetSpec, Path | None]:
    """Split ``NAME[:ROOT]`` into the registered family and its root."""
    name, _, root = spec.partition(":")
    if name not in DATASETS:
        raise DatasetError(DATASETS.unknown(name))
    family = DATASETS.get(name)
    if family.needs_root and not root:
        raise DatasetError(f"--dataset {name} needs a root folder: --dataset {name}:/path/to/{name}")
    return family, (Path(root).expanduser() if root else None)


def create_dataset(spec: str, split: str | None = None) -> TwoAFCDataset:
    """Build the dataset named by ``NAME[:ROOT]`` for ``split`` (the family's default when None)."""
    family, root = parse_dataset_arg(spec)
    split = split or family.default_split
    if family.splits and split not in family.splits:
        raise DatasetError(
            f"unknown split {split!r} for dataset {family.name}; choose one of: {', '.join(family.splits)}"
        )
    if root is not None and not root.exists():
        raise DatasetError(f"dataset root not found: {root} (from --dataset {spec}); check the path")
    return family.builder(root, split)
