"""The two layouts a user points at: ``retrieval:ROOT`` (queries/gallery/relevance CSVs) and ``knn:ROOT`` (labelled
folders), each bad input one line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lipsim_bench.datasets import DATASETS, create_dataset
from lipsim_bench.datasets.gallery_csv import csv_gallery_dataset
from lipsim_bench.datasets.gallery_folder import folder_gallery_dataset
from lipsim_bench.errors import DatasetError


def _png(path: Path, seed: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


QUERIES = "id,path,label\nq1,img/q1.png,cat\nq2,img/q2.png,dog\n"
GALLERY = "id,path,label\ng1,img/g1.png,cat\ng2,img/g2.png,dog\ng3,img/g3.png,dog\n"
RELEVANCE = "query_id,gallery_id\nq1,g1\nq2,g2\nq2,g3\nq2,g3\n"


def _csv_root(root: Path, queries: str = QUERIES, gallery: str = GALLERY, relevance: str = RELEVANCE) -> Path:
    for seed, name in enumerate(("q1", "q2", "g1", "g2", "g3")):
        _png(root / f"img/{name}.png", seed)
    for name, text in (("queries.csv", queries), ("gallery.csv", gallery), ("relevance.csv", relevance)):
        if text is not None:
            (root / name).write_text(text, encoding="utf-8")
    return root


def test_the_csv_layout_reads_queries_gallery_and_relevance(tmp_path: Path) -> None:
    ds = create_dataset(f"retrieval:{_csv_root(tmp_path)}")
    assert (ds.name, ds.split, ds.image_size) == ("retrieval", "test", 224)
    assert [q.id for q in ds.queries] == ["q1", "q2"] and ds.gallery_ids == ["g1", "g2", "g3"]
    assert ds.queries[1].relevant == ("g2", "g3")  # a pair listed twice counts once
    assert ds.gallery_labels == ["cat", "dog", "dog"] and ds[1]["relevant"].tolist() == [False, True, True]
    assert ds[0]["query"].shape == (3, 224, 224)
    assert DATASETS.get("retrieval").task == "retrieval"


def test_labels_are_optional_and_size_is_the_callers(tmp_path: Path) -> None:
    root = _csv_root(tmp_path, queries="id,path\nq1,img/q1.png\nq2,img/q2.png\n")
    ds = csv_gallery_dataset(root, image_size=None)
    assert [q.label for q in ds.queries] == ["", ""] and ds[0]["query"].shape == (3, 8, 8)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"queries": None}, r"queries\.csv not found in .*; a retrieval root holds"),
        ({"gallery": "id,where\ng1,img/g1.png\n"}, r"gallery\.csv lacks column\(s\) path"),
        ({"gallery": "id,path,path\ng1,img/g1.png,x\n"}, "names column.s. path more than once"),
        ({"gallery": "id,path\n"}, r"gallery\.csv holds no rows"),
        ({"gallery": "id,path\ng1,img/g1.png,extra\n"}, "data row 1 has 3 cells but the header has 2"),
        ({"queries": "id,path\n ,img/q1.png\n"}, "data row 1: the id is blank"),
        ({"queries": "id,path\nq1,img/q1.png\nq1,img/q2.png\n"}, "id 'q1' is already used by data row 1"),
        ({"gallery": "id,path\ng1,../outside.png\n"}, "leads outside the dataset root"),
        ({"gallery": "id,path\ng1,\n"}, "the image path is blank"),
        ({"relevance": "query_id,gallery_id\nq9,g1\n"}, "query_id 'q9' is not an id of queries.csv"),
        ({"relevance": "query_id,gallery_id\nq1,g9\n"}, r"gallery_id 'g9' \(relevant to query 'q1'\) is not an id"),
        ({"relevance": "query_id,gallery_id\nq1,g1\n"}, "lists no relevant gallery item for query 'q2'"),
        ({"relevance": "query_id\nq1\n"}, r"relevance\.csv lacks column\(s\) gallery_id"),
    ],
)
def test_bad_csv_layouts_are_one_line(tmp_path: Path, files: dict[str, str | None], message: str) -> None:
    texts = {"queries": QUERIES, "gallery": GALLERY, "relevance": RELEVANCE, **files}
    root = _csv_root(tmp_path, texts["queries"], texts["gallery"], texts["relevance"])
    with pytest.raises(DatasetError, match=message) as info:
        csv_gallery_dataset(root)
    assert "\n" not in str(info.value)


def test_a_missing_csv_image_is_named_before_reading(tmp_path: Path) -> None:
    root = _csv_root(tmp_path)
    (root / "img/g3.png").unlink()
    with pytest.raises(DatasetError, match=r"image missing: .*g3\.png \(gallery item g3 of retrieval/test\)"):
        csv_gallery_dataset(root).check_files()
    with pytest.raises(DatasetError, match="unknown split 'train'"):
        csv_gallery_dataset(root, "train")


def _folder_root(root: Path, train: dict[str, int], test: dict[str, int]) -> Path:
    seed = 0
    for split, counts in (("train", train), ("test", test)):
        for label, n in counts.items():
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed += 1
                _png(root / split / label / f"{i:02d}.png", seed)
    return root


def test_labelled_folders_make_a_knn_set(tmp_path: Path) -> None:
    root = _folder_root(tmp_path, {"b": 2, "a": 3, "empty": 0}, {"a": 1, "b": 2})
    _png(root / "train/a/.hidden.png", 99)
    (root / "train/a/notes.txt").write_text("not an image")
    _png(root / "train/a/upper.JPG", 98)
    ds = create_dataset(f"knn:{root}")
    assert (ds.name, ds.image_size) == ("knn", 224) and DATASETS.get("knn").task == "knn"
    assert ds.gallery_ids == ["train/a/00.png", "train/a/01.png", "train/a/02.png", "train/a/upper.JPG",
                              "train/b/00.png", "train/b/01.png"]  # fmt: skip
    assert [q.id for q in ds.queries] == ["test/a/00.png", "test/b/00.png", "test/b/01.png"]
    assert ds.gallery_labels == ["a"] * 4 + ["b"] * 2
    assert ds[2]["relevant"].tolist() == [False] * 4 + [True] * 2 and ds[0]["label"] == "a"


@pytest.mark.parametrize(
    ("train", "test", "message"),
    [
        (None, {"a": 1}, r"train is not a folder; a kNN root holds"),
        ({"a": 1}, {"a": 1, "z": 1}, r"label 'z' has test images but no training image in .*train/z"),
        ({"a": 0}, {"a": 1}, r"train holds no label folder with images"),
    ],
)
def test_bad_folder_layouts_are_one_line(tmp_path: Path, train: dict | None, test: dict, message: str) -> None:
    root = _folder_root(tmp_path, train or {}, test)  # None: no train folder at all
    with pytest.raises(DatasetError, match=message) as info:
        folder_gallery_dataset(root)
    assert "\n" not in str(info.value)


def test_a_symlink_out_of_the_folder_root_is_refused(tmp_path: Path) -> None:
    root = _folder_root(tmp_path / "root", {"a": 1}, {"a": 1})
    _png(tmp_path / "secret.png", 5)
    os.symlink(tmp_path / "secret.png", root / "train/a/link.png")
    with pytest.raises(DatasetError, match="leads outside the dataset root"):
        folder_gallery_dataset(root)
