"""Labelled folders for kNN classification (``--dataset knn:ROOT``), also the layout of the bundled ``sample-knn``.

::

    ROOT/train/<label>/*.png|jpg|jpeg    the gallery (the labelled examples the neighbours are searched in)
    ROOT/test/<label>/*.png|jpg|jpeg     the queries

A query's relevant items are the gallery images of its label (the 1-NN prediction is right when the nearest one is
among them). Ids are the paths relative to ROOT (``test/cat/001.png``); files are read in sorted order; hidden files
and other extensions are skipped. Real sets mix image sizes, so ``knn:ROOT`` resizes every image to 224x224
(bicubic, as NIGHT); the bundled set is read at its own 64x64.
"""

from __future__ import annotations

from pathlib import Path

from lipsim_bench.datasets.base import register_dataset
from lipsim_bench.datasets.gallery import GalleryDataset, GalleryRecord, QueryRecord, check_layout_request
from lipsim_bench.datasets.paths import RootGuard
from lipsim_bench.errors import DatasetError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
GALLERY_FOLDER, QUERY_FOLDER = "train", "test"
FOLDER_SPLITS = ("test",)
#: Real labelled sets mix image sizes: every image is resized to this square (bicubic), as NIGHT's 224.
FOLDER_IMAGE_SIZE = 224
LAYOUT = "ROOT/train/<label>/*.png|jpg (the gallery) and ROOT/test/<label>/*.png|jpg (the queries)"


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def labelled_images(root: Path, folder: str) -> dict[str, list[Path]]:
    """label -> its images under ``root/folder/label`` (sorted), labels sorted; labels without images are left out."""
    base = root / folder
    if not base.is_dir():
        raise DatasetError(f"{base} is not a folder; a kNN root holds {LAYOUT}")
    guard = RootGuard(root)
    found: dict[str, list[Path]] = {}
    for label_dir in sorted(d for d in base.iterdir() if d.is_dir() and _visible(d)):
        guard.check(label_dir, "label folder")
        images = sorted(
            guard.check(f, "image")
            for f in label_dir.iterdir()
            if _visible(f) and f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
        )
        if images:
            found[label_dir.name] = images
    if not found:
        raise DatasetError(f"{base} holds no label folder with images (.png, .jpg, .jpeg); a kNN root holds {LAYOUT}")
    return found


def folder_gallery_dataset(
    root: Path, split: str = "test", *, name: str = "knn", image_size: int | None = FOLDER_IMAGE_SIZE
) -> GalleryDataset:
    """A :class:`GalleryDataset` over labelled folders: queries and gallery ordered by label, then file name."""
    check_layout_request(split, FOLDER_SPLITS, image_size, f"{name}:{root}", "folder")
    train, test = labelled_images(root, GALLERY_FOLDER), labelled_images(root, QUERY_FOLDER)
    unknown = next((label for label in test if label not in train), None)
    if unknown is not None:
        raise DatasetError(
            f"label {unknown!r} has test images but no training image in {root / GALLERY_FOLDER / unknown}; "
            "kNN can never predict it: add its training images, or remove its test folder"
        )

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix()

    gallery = [GalleryRecord(rel(p), p, label) for label, paths in train.items() for p in paths]
    same = {label: tuple(rel(p) for p in paths) for label, paths in train.items()}
    queries = [QueryRecord(rel(p), p, label, same[label]) for label, paths in test.items() for p in paths]
    return GalleryDataset(name, split, queries, gallery, image_size)


@register_dataset(
    "knn",
    splits=FOLDER_SPLITS,
    default_split="test",
    needs_root=True,
    description=(
        "kNN classification, labelled folders: knn:ROOT with train/<label>/*.png|jpg (gallery) and "
        "test/<label>/* (queries); images resized to 224x224"
    ),
    task="knn",
)
def knn_dataset(root: Path | None, split: str) -> GalleryDataset:
    assert root is not None
    return folder_gallery_dataset(root, split)
