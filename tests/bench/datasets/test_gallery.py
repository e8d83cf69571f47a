"""GalleryDataset: items, gallery reads, subsets, fingerprint and every bad-input line (tiny synthetic PNGs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from lipsim_bench.datasets.gallery import GalleryDataset, GalleryRecord, QueryRecord
from lipsim_bench.errors import DatasetError


def _png(path: Path, seed: int, size: int = 8, keep: bool = False) -> Path:
    """A random PNG at ``path`` (left as it is when ``keep`` and it exists)."""
    if keep and path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def _set(root: Path, image_size: int | None = None) -> GalleryDataset:
    """3 queries, 5 gallery images: q0 -> g0, g1; q1 -> g2; q2 -> g3 (g4 is a distractor)."""
    gallery = [GalleryRecord(f"g{i}", _png(root / f"g/{i}.png", 10 + i, keep=True), f"c{min(i, 3)}") for i in range(5)]
    relevant = [("g0", "g1"), ("g2",), ("g3",)]
    queries = [QueryRecord(f"q{i}", _png(root / f"q/{i}.png", i, keep=True), f"c{i}", relevant[i]) for i in range(3)]
    return GalleryDataset("toy", "test", queries, gallery, image_size)


def test_items_hold_the_query_and_its_relevance_mask(tmp_path: Path) -> None:
    ds = _set(tmp_path)
    assert len(ds) == 3 and ds.records == ds.queries and ds.groups == ["test"]
    item = ds[0]
    assert set(item) == {"index", "id", "query", "label", "group", "relevant"}
    assert item["index"] == 0 and item["id"] == "q0" and item["label"] == "c0" and item["group"] == "test"
    assert item["query"].shape == (3, 8, 8) and item["query"].dtype == torch.float32
    expected = torch.from_numpy(np.array(Image.open(tmp_path / "q/0.png"))).permute(2, 0, 1).float() / 255
    assert torch.equal(item["query"], expected)
    assert item["relevant"].tolist() == [True, True, False, False, False]
    assert ds[1]["relevant"].tolist() == [False, False, True, False, False]
    assert ds.gallery_ids == ["g0", "g1", "g2", "g3", "g4"]
    assert ds.gallery_labels == ["c0", "c1", "c2", "c3", "c3"]


def test_a_loader_collates_the_relevance_into_a_matrix(tmp_path: Path) -> None:
    batch = next(iter(DataLoader(_set(tmp_path), batch_size=3)))
    assert batch["query"].shape == (3, 3, 8, 8)
    assert batch["relevant"].shape == (3, 5) and batch["relevant"].dtype == torch.bool
    assert batch["relevant"].sum(1).tolist() == [2, 1, 1]
    assert batch["label"] == ["c0", "c1", "c2"] and batch["group"] == ["test"] * 3


def test_gallery_images_come_in_the_order_asked(tmp_path: Path) -> None:
    ds = _set(tmp_path)
    images = ds.gallery_images([4, 0])
    assert images.shape == (2, 3, 8, 8)
    assert torch.equal(images[0], ds.gallery_images([4])[0]) and not torch.equal(images[0], images[1])
    with pytest.raises(DatasetError, match="no image"):
        ds.gallery_images([])


def test_resizing_reads_every_image_at_the_size(tmp_path: Path) -> None:
    ds = _set(tmp_path, image_size=16)
    assert ds[0]["query"].shape == (3, 16, 16) and ds.gallery_images([1]).shape == (1, 3, 16, 16)


def test_head_and_every_cut_the_queries_and_keep_the_gallery(tmp_path: Path) -> None:
    ds = _set(tmp_path)
    assert [q.id for q in ds.head(2).queries] == ["q0", "q1"] and ds.head(None) is ds
    assert [q.id for q in ds.every(2).queries] == ["q0", "q2"] and ds.every(1) is ds
    assert ds.head(1).gallery_ids == ds.gallery_ids and ds.every(2).gallery_ids == ds.gallery_ids
    assert ds.every(2)[1]["relevant"].tolist() == [False, False, False, True, False]
    with pytest.raises(DatasetError, match="--n must be a positive number of queries"):
        ds.head(0)
    with pytest.raises(DatasetError, match="--every must be a positive integer"):
        ds.every(0)


def test_fingerprint_follows_content_not_place(tmp_path: Path) -> None:
    ds = _set(tmp_path / "a")
    first = ds.fingerprint()
    assert first.startswith("sha256:") and _set(tmp_path / "a").fingerprint() == first
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    moved = GalleryDataset(
        "toy",
        "test",
        [
            QueryRecord(q.id, tmp_path / "b" / q.path.relative_to(tmp_path / "a"), q.label, q.relevant)
            for q in ds.queries
        ],
        [GalleryRecord(g.id, tmp_path / "b" / g.path.relative_to(tmp_path / "a"), g.label) for g in ds.gallery],
        None,
    )
    assert moved.fingerprint() == first  # the same data elsewhere reuses records
    assert ds.head(2).fingerprint() != first  # another selection of queries
    other_relevance = [QueryRecord(q.id, q.path, q.label, ("g4",) if q.id == "q2" else q.relevant) for q in ds.queries]
    assert GalleryDataset("toy", "test", other_relevance, ds.gallery, None).fingerprint() != first
    relabelled = [GalleryRecord(g.id, g.path, "x" if g.id == "g4" else g.label) for g in ds.gallery]
    assert GalleryDataset("toy", "test", ds.queries, relabelled, None).fingerprint() != first
    _png(tmp_path / "a/g/4.png", 99)  # a distractor's bytes change (same size, same name)
    assert _set(tmp_path / "a").fingerprint() != first


def test_check_files_names_a_missing_image(tmp_path: Path) -> None:
    ds = _set(tmp_path)
    ds.check_files()
    (tmp_path / "g/3.png").unlink()
    with pytest.raises(DatasetError, match=r"image missing: .*3\.png \(gallery item g3 of toy/test\)"):
        ds.check_files()


def _records(root: Path) -> tuple[list[QueryRecord], list[GalleryRecord]]:
    g = [GalleryRecord("g0", _png(root / "g0.png", 1), "a"), GalleryRecord("g1", _png(root / "g1.png", 2), "b")]
    return [QueryRecord("q0", _png(root / "q0.png", 3), "a", ("g0",))], g


def test_bad_lists_are_one_line_each(tmp_path: Path) -> None:
    queries, gallery = _records(tmp_path)
    q = queries[0]
    cases = [
        ([], gallery, "has no queries"),
        (queries, [], "has an empty gallery"),
        ([q, q], gallery, "query id 'q0' appears more than once"),
        (queries, [gallery[0], gallery[0]], "gallery id 'g0' appears more than once"),
        ([QueryRecord("q0", q.path, "a", ("g7",))], gallery, "relevant item 'g7', which is not in the gallery"),
        ([QueryRecord("q0", q.path, "a", ())], gallery, "query 'q0' has no relevant gallery item"),
    ]
    for qs, gs, message in cases:
        with pytest.raises(DatasetError, match=message) as info:
            GalleryDataset("toy", "test", qs, gs, None)
        assert "\n" not in str(info.value)


def test_mixed_sizes_without_resizing_are_refused(tmp_path: Path) -> None:
    queries, gallery = _records(tmp_path)
    _png(tmp_path / "g1.png", 2, size=10)
    ds = GalleryDataset("toy", "test", queries, gallery, None)
    ds[0]
    ds.gallery_images([0])
    with pytest.raises(DatasetError, match=r"g1\.png is 10x10 but .*q0\.png is 8x8: toy is not resized"):
        ds.gallery_images([1])
    assert GalleryDataset("toy", "test", queries, gallery, 8).gallery_images([0, 1]).shape == (2, 3, 8, 8)
