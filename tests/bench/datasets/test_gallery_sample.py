"""The bundled ``sample-retrieval`` and ``sample-knn``: sizes, held-out photos, determinism, the cache, hardness."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from lipsim_bench.datasets import DATASETS, create_dataset
from lipsim_bench.datasets.gallery_draw import Photo, apart
from lipsim_bench.datasets.gallery_sample import (
    BUNDLED_ATTACK_EPS,
    GALLERY_SAMPLE_VERSION,
    RETRIEVAL,
    build_sample_retrieval,
    cached_root,
)
from lipsim_bench.datasets.sample import TEST_SOURCES, TRAIN_SOURCES
from lipsim_bench.datasets.sample.photos import source_name

# pixels of the default builds (numpy 2.4.6, Pillow 13.0.0, scikit-image 0.26.0): any change to the recipe or the
# draws moves them, and must bump GALLERY_SAMPLE_VERSION
RETRIEVAL_PIXELS = "f37e9dacf2a63190"
KNN_PIXELS = "4246363fe84a7d0e"
# measured: pixel-l2 Recall@1 77.1% (48 queries, 3 relevant of 208) and 1-NN accuracy 25.9% (18 classes, chance 5.6%):
# far from solved by pixels, far above chance
MAX_PIXEL_L2_RECALL, MAX_PIXEL_L2_KNN = 85.0, 40.0


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("cache")
    cached_root("retrieval", base)
    cached_root("knn", base)
    return base


@pytest.fixture
def in_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIPSIM_BENCH_CACHE", str(cache))
    return cache


def _manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text(encoding="utf-8"))


def _meta(root: Path) -> list[dict[str, str]]:
    with open(root / "meta.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_registered_with_their_task_and_radii() -> None:
    for name, task in (("sample-retrieval", "retrieval"), ("sample-knn", "knn")):
        spec = DATASETS.get(name)
        assert (spec.task, spec.needs_root, spec.splits) == (task, False, ("test",))
        assert dict(spec.attack_eps) == BUNDLED_ATTACK_EPS


def test_sample_retrieval_sizes_and_relevance(in_cache: Path) -> None:
    ds = create_dataset("sample-retrieval")
    assert (ds.name, ds.split, ds.image_size, len(ds), len(ds.gallery)) == ("sample-retrieval", "test", None, 48, 208)
    assert all(len(q.relevant) == RETRIEVAL["gallery_views"] for q in ds.queries)
    label = dict(zip(ds.gallery_ids, ds.gallery_labels))
    # relevant = exactly the other views of the query's photo; every other gallery image is another photo
    for q in ds.queries:
        assert set(q.relevant) == {g for g, lab in label.items() if lab == q.label}
    assert len(set(ds.gallery_labels)) == RETRIEVAL["query_photos"] + RETRIEVAL["distractor_photos"]
    assert ds[0]["query"].shape == (3, 64, 64) and ds.gallery_images([207]).shape == (1, 3, 64, 64)


def test_sample_retrieval_uses_only_held_out_photos_kept_apart(cache: Path) -> None:
    root = cache / f"sample-retrieval-{GALLERY_SAMPLE_VERSION}"
    rows = _meta(root)
    assert {r["source"] for r in rows} == {source_name(f) for f in TEST_SOURCES}
    photos = {r["photo"]: (r["source"], float(r["scale"]), int(r["y"]), int(r["x"])) for r in rows}
    names = sorted({p[0] for p in photos.values()})
    placed = [Photo(names.index(s), scale, y, x) for s, scale, y, x in photos.values()]
    for i, a in enumerate(placed):
        assert all(apart(a, b, RETRIEVAL["offset"]) for b in placed[i + 1 :])


def test_sample_knn_labels_are_source_photos(in_cache: Path) -> None:
    ds = create_dataset("sample-knn")
    assert (len(ds), len(ds.gallery), len(set(ds.gallery_labels))) == (54, 162, 18)
    assert set(ds.gallery_labels) == {source_name(f) for f in TEST_SOURCES + TRAIN_SOURCES}
    assert ds.queries[0].id.startswith("test/astronaut/") and ds.gallery[0].id.startswith("train/astronaut/")
    assert all(set(q.relevant) == {g.id for g in ds.gallery if g.label == q.label} for q in ds.queries)


def test_the_build_is_deterministic(cache: Path, tmp_path: Path) -> None:
    first = _manifest(cache / f"sample-retrieval-{GALLERY_SAMPLE_VERSION}")
    again = _manifest(build_sample_retrieval(tmp_path / "again"))
    for key in ("images", "files", "pixels_sha256", "recipe", "counts"):
        assert again[key] == first[key]
    assert first["pixels_sha256"].startswith(RETRIEVAL_PIXELS)
    assert _manifest(cache / f"sample-knn-{GALLERY_SAMPLE_VERSION}")["pixels_sha256"].startswith(KNN_PIXELS)


def test_the_cache_is_reused_and_rebuilt_when_altered(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = cached_root("retrieval", tmp_path)
    image = root / "gallery/g005.png"
    stamp = image.stat().st_mtime_ns
    assert cached_root("retrieval", tmp_path) == root and image.stat().st_mtime_ns == stamp  # reused, not rebuilt
    original = image.read_bytes()
    image.write_bytes(original[:-8] + b"\0" * 8)
    assert cached_root("retrieval", tmp_path) == root and image.read_bytes() == original
    assert "gallery/g005.png was deleted or altered since it was built" in capsys.readouterr().err
    manifest = _manifest(root)
    manifest["recipe"]["offset"] = 1  # built by other rules: rebuilt silently
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    cached_root("retrieval", tmp_path)
    assert _manifest(root)["recipe"]["offset"] == RETRIEVAL["offset"]


def _pixel_l2_hits(ds) -> float:
    gallery = ds.gallery_images(range(len(ds.gallery))).flatten(1)
    items = [ds[i] for i in range(len(ds))]
    queries = torch.stack([it["query"] for it in items]).flatten(1)
    relevant = torch.stack([it["relevant"] for it in items])
    top1 = torch.cdist(queries, gallery).argmin(1)
    return 100.0 * relevant[torch.arange(len(ds)), top1].float().mean().item()


def test_pixel_l2_does_not_solve_the_bundled_sets(in_cache: Path) -> None:
    recall = _pixel_l2_hits(create_dataset("sample-retrieval"))
    accuracy = _pixel_l2_hits(create_dataset("sample-knn"))
    assert 30.0 < recall < MAX_PIXEL_L2_RECALL and 100 / 18 < accuracy < MAX_PIXEL_L2_KNN
