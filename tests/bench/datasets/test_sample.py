"""The bundled ``sample`` 2AFC set: NIGHT's layout, held-out sources, the val split, determinism, hardness for pixel-l2."""

from __future__ import annotations

import csv
import hashlib
import json
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lipsim_bench.datasets.sample import (
    SAMPLE_VERSION,
    build_sample_dataset,
    default_cache_dir,
    png_bytes,
    sample_dataset_root,
)
from lipsim_bench.datasets.sample import build as sample

COLUMNS = ["id", "left_vote", "right_vote", "votes", "ref_path", "left_path", "right_path", "split", "is_imagenet"]
SMALL = {"n_train": 40, "n_test": 20, "n_val": 10}
# v1 (train and test only) built with n_train=40, n_test=20, seed 0: v2 must keep these pixels and this data.csv
V1_SMALL_PIXELS_SHA256 = "8f48741fa12d501fdf9791c8e0ea250766bd1901e41d3ee54550b11ae6439918"
V1_SMALL_DATA_CSV_SHA256 = "a2dfcd9fc5d56ede64649c3172b25e728d0efc71bfc4e6c843de898962d4a6f9"
# measured on the default build (3000/300): pixel-l2 scores 50% (train) and 60% (test); median
# ||x0 - x1|| is 19.7 (train) and 23.6 (test), while two jitters of the same ref are ~8 apart. A set
# of "two distortions of the ref" scores high and has x0, x1 close together: it fails both bounds.
MAX_PIXEL_L2_SCORE = 75.0
MIN_MEDIAN_X0_X1 = 14.0


def _rows(root: Path, name: str = "data.csv") -> list[dict[str, str]]:
    with open(root / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _image(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "RGB"
        return np.asarray(img, dtype=np.float64) / 255.0


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in {".png", ".csv"}
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_dataset(tmp_path_factory.mktemp("a") / "sample", **SMALL, progress=False)


@pytest.fixture(scope="module")
def moderate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_dataset(
        tmp_path_factory.mktemp("m") / "sample", n_train=200, n_test=120, n_val=60, seed=1, progress=False
    )


def test_layout_and_columns(small: Path) -> None:
    with open(small / "data.csv", encoding="utf-8") as f:
        assert f.readline().strip().split(",") == COLUMNS
    rows = _rows(small)
    assert [int(r["id"]) for r in rows] == list(range(70))
    assert [r["split"] for r in rows] == ["train"] * 40 + ["test"] * 20 + ["val"] * 10  # val after test: v1 ids kept
    for r in rows:
        tid = int(r["id"])
        folder = f"{tid // 100:03d}"
        assert r["ref_path"] == f"ref/{folder}/{tid:06d}.png"
        assert r["left_path"] == f"distort/{folder}/{tid:06d}_0.png"
        assert r["right_path"] == f"distort/{folder}/{tid:06d}_1.png"
        assert float(r["right_vote"]) in (0.0, 1.0)
        assert float(r["left_vote"]) + float(r["right_vote"]) == 1.0
        assert int(r["votes"]) == 10 and r["is_imagenet"] == "False"
        for key in ("ref_path", "left_path", "right_path"):
            assert _image(small / r[key]).shape == (64, 64, 3)
    manifest = json.loads((small / "manifest.json").read_text())
    assert manifest["version"] == SAMPLE_VERSION and manifest["seed"] == 0 and manifest["size"] == 64
    assert manifest["counts"] == {"train": 40, "test": 20, "val": 10}
    assert (manifest["n_train"], manifest["n_test"], manifest["n_val"]) == (40, 20, 10)
    assert manifest["files"]["data.csv"] == hashlib.sha256((small / "data.csv").read_bytes()).hexdigest()
    assert not [p for p in small.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_test_sources_are_held_out(small: Path) -> None:
    manifest = json.loads((small / "manifest.json").read_text())
    train, test = set(manifest["sources"]["train"]), set(manifest["sources"]["test"])
    assert train and test and not train & test
    assert manifest["sources"]["val"] == manifest["sources"]["train"]  # no further photo to hold out
    assert not {"motorcycle_left", "motorcycle_right"} & train  # the stereo pair is one scene
    meta = _rows(small, "meta.csv")
    assert [m["id"] for m in meta] == [r["id"] for r in _rows(small)]
    for m in meta:
        allowed = test if m["split"] == "test" else train
        assert m["source"] in allowed and m["neg_source"] in allowed


def test_same_args_same_bytes_and_seed_matters(small: Path, tmp_path: Path) -> None:
    again = build_sample_dataset(tmp_path / "again", **SMALL, progress=False)
    assert _tree_bytes(again) == _tree_bytes(small)
    first, second = (json.loads((r / "manifest.json").read_text()) for r in (small, again))
    assert first["pixels_sha256"] == second["pixels_sha256"]
    other = build_sample_dataset(tmp_path / "other", **SMALL, seed=1, progress=False)
    a, b = _tree_bytes(small), _tree_bytes(other)
    assert a.keys() == b.keys()
    assert sum(a[k] != b[k] for k in a if k.endswith(".png")) > 0.9 * 3 * 70


def test_test_split_does_not_depend_on_train_size(small: Path, tmp_path: Path) -> None:
    fewer = build_sample_dataset(tmp_path / "fewer", n_train=5, n_test=20, n_val=0, progress=False)
    for r_small, r_fewer in zip(_rows(small)[40:], _rows(fewer)[5:]):
        for key in ("ref_path", "left_path", "right_path"):
            assert (small / r_small[key]).read_bytes() == (fewer / r_fewer[key]).read_bytes()


def _split_hashes(root: Path) -> dict[str, set[str]]:
    """split -> the sha256 of every image of its triplets (the keys results are stored under)."""
    images = json.loads((root / "manifest.json").read_text())["images"]
    out: dict[str, set[str]] = {}
    for r in _rows(root):
        out.setdefault(r["split"], set()).update(images[r[k]] for k in ("ref_path", "left_path", "right_path"))
    return out


def test_val_leaves_the_v1_train_and_test_triplets_unchanged(small: Path, tmp_path: Path) -> None:
    """v2 only appends val: with n_val=0 the build is v1's, pixel for pixel, and with val its rows are a prefix."""
    without = build_sample_dataset(tmp_path / "v1", n_train=40, n_test=20, n_val=0, progress=False)
    manifest = json.loads((without / "manifest.json").read_text())
    assert manifest["pixels_sha256"] == V1_SMALL_PIXELS_SHA256
    assert manifest["files"]["data.csv"] == V1_SMALL_DATA_CSV_SHA256
    for name in ("data.csv", "meta.csv"):
        old = (without / name).read_text().splitlines()
        assert (small / name).read_text().splitlines()[: len(old)] == old
    old_images = {k: v for k, v in _tree_bytes(without).items() if k.endswith(".png")}
    new_images = _tree_bytes(small)
    assert old_images and all(new_images[k] == v for k, v in old_images.items())


def test_no_val_image_repeats_a_train_or_test_image(small: Path, moderate: Path) -> None:
    for root in (small, moderate):
        hashes = _split_hashes(root)
        assert hashes["val"] and not hashes["val"] & hashes["train"] and not hashes["val"] & hashes["test"]


def test_a_val_draw_that_repeats_a_train_image_is_redrawn(tmp_path: Path) -> None:
    """The default set has one: val 90's reference is train 657's (page, scale 3/4, the same place): redrawn."""
    root = build_sample_dataset(tmp_path / "s", n_train=658, n_test=0, n_val=91, progress=False)
    assert json.loads((root / "manifest.json").read_text())["val_redrawn"] == [{"index": 90, "attempts": 1}]
    hashes = _split_hashes(root)
    assert len(hashes["val"]) == 3 * 91 and not hashes["val"] & hashes["train"]


def test_answers_are_about_content_not_pixels(moderate: Path) -> None:
    rows = _rows(moderate)
    p = np.array([float(r["right_vote"]) for r in rows])
    assert 0.35 < p.mean() < 0.65
    agreement, gaps = [], []
    for r, pi in zip(rows, p):
        ref, x0, x1 = (_image(moderate / r[k]) for k in ("ref_path", "left_path", "right_path"))
        d0, d1 = np.linalg.norm(ref - x0), np.linalg.norm(ref - x1)
        agreement.append((d0 < d1) * (1 - pi) + (d1 < d0) * pi + 0.5 * (d0 == d1))
        gaps.append(np.linalg.norm(x0 - x1))
    assert 100 * np.mean(agreement) < MAX_PIXEL_L2_SCORE
    assert np.median(gaps) > MIN_MEDIAN_X0_X1


def test_night_loader_reads_it(small: Path) -> None:
    from lipsim_bench.datasets.night import read_night_csv, select_split

    frame = read_night_csv(small)
    assert len(select_split(frame, "train")) == 40
    assert len(select_split(frame, "test")) == 20  # votes >= 6 keeps every row
    assert len(select_split(frame, "val")) == 10


def test_create_dataset_reads_the_val_split(small: Path) -> None:
    from lipsim_bench.datasets import create_dataset

    val, test = create_dataset(f"sample:{small}", "val"), create_dataset(f"sample:{small}", "test")
    assert (val.split, len(val), len(test)) == ("val", 10, 20)
    assert {r.id for r in val.records} == {str(i) for i in range(60, 70)}
    assert create_dataset(f"sample:{small}").split == "test"  # the benchmark still scores test by default


def test_cache_root_builds_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = sample.build_sample_dataset

    def counted(root: str | Path, **kwargs: int) -> Path:
        calls.append(Path(root))
        return real(root, progress=False, **kwargs)

    monkeypatch.setattr(sample, "build_sample_dataset", counted)
    monkeypatch.setattr(sample, "DEFAULTS", {"n_train": 4, "n_test": 2, "n_val": 1, "size": 64, "seed": 0})
    root = sample_dataset_root(tmp_path / "cache")
    assert root == tmp_path / "cache" / f"sample-{SAMPLE_VERSION}"
    assert (root / "manifest.json").is_file() and len(calls) == 1 and len(_rows(root)) == 7
    assert root.stat().st_mode & 0o777 == 0o755
    stamp = (root / "data.csv").stat().st_mtime_ns
    assert sample_dataset_root(tmp_path / "cache") == root
    assert len(calls) == 1 and (root / "data.csv").stat().st_mtime_ns == stamp

    # a cache built by other rules (an edited recipe, an older version) is rebuilt, not reused
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["recipe"]["flat_std"] = 1.0
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert sample_dataset_root(tmp_path / "cache") == root
    assert len(calls) == 2 and json.loads((root / "manifest.json").read_text())["recipe"] == sample._recipe()
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["version"] = "v1"  # a set built before the val split: no n_val either
    del manifest["n_val"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert sample_dataset_root(tmp_path / "cache") == root and len(calls) == 3
    assert {r["split"] for r in _rows(root)} == {"train", "test", "val"}

    monkeypatch.setenv("LIPSIM_BENCH_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert sample_dataset_root() == tmp_path / "env" / f"sample-{SAMPLE_VERSION}"
    assert len(calls) == 4
    monkeypatch.delenv("LIPSIM_BENCH_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "lipsim_bench"


def test_interrupted_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(out: Path, **kwargs: object) -> None:
        (out / "data.csv").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(sample, "_write_dataset", fail)
    with pytest.raises(KeyboardInterrupt):
        build_sample_dataset(tmp_path / "sample", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_rebuild_replaces_existing_root(tmp_path: Path) -> None:
    root = tmp_path / "sample"
    build_sample_dataset(root, n_train=3, n_test=1, n_val=1, progress=False)
    (root / "stale.txt").write_text("x")
    build_sample_dataset(root, n_train=2, n_test=1, n_val=0, progress=False)
    assert not (root / "stale.txt").exists() and len(_rows(root)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample"]


def test_png_writer_round_trips() -> None:
    rng = np.random.default_rng(0)
    for img in (
        rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
        np.zeros((5, 7, 3), np.uint8),
        np.full((3, 2, 3), 255, np.uint8),
    ):
        data = png_bytes(img)
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(BytesIO(data)) as decoded:
            assert decoded.mode == "RGB"
            assert np.array_equal(np.asarray(decoded), img)


def test_a_deleted_or_altered_file_of_the_built_set_is_rebuilt_with_one_line(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The set is checked against its manifest on every use (sha256 from the content-hash cache); it was built
    here, so a deleted or altered file rebuilds it, and nothing asks for a download."""
    import os

    calls: list[Path] = []
    real = sample.build_sample_dataset

    def counted(root: str | Path, **kwargs: int) -> Path:
        calls.append(Path(root))
        return real(root, progress=False, **kwargs)

    monkeypatch.setattr(sample, "build_sample_dataset", counted)
    monkeypatch.setattr(sample, "DEFAULTS", {"n_train": 2, "n_test": 3, "n_val": 1, "size": 64, "seed": 0})
    root = sample_dataset_root(tmp_path / "cache")
    manifest = json.loads((root / "manifest.json").read_text())
    assert len(manifest["images"]) == 3 * 6 and len(calls) == 1
    capsys.readouterr()
    assert sample_dataset_root(tmp_path / "cache") == root and len(calls) == 1  # intact: reused, silently
    assert capsys.readouterr().err == ""

    deleted = root / "distort" / "000" / "000003_1.png"
    original = deleted.read_bytes()
    deleted.unlink()
    assert sample_dataset_root(tmp_path / "cache") == root and len(calls) == 2
    err = capsys.readouterr().err.strip()
    assert (
        len(err.splitlines()) == 1 and str(deleted) in err and "rebuilding" in err and "nothing to download" in err
    ), err
    assert deleted.read_bytes() == original

    altered = root / "ref" / "000" / "000004.png"  # the same size, its modification time kept
    stat = altered.stat()
    blob = bytearray(altered.read_bytes())
    blob[-20] ^= 0xFF
    altered.write_bytes(bytes(blob))
    os.utime(altered, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert sample_dataset_root(tmp_path / "cache") == root and len(calls) == 3
    assert "ref/000/000004.png was deleted or altered" in capsys.readouterr().err
    assert sample_dataset_root(tmp_path / "cache") == root and len(calls) == 3


def test_a_manifest_without_image_hashes_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sample, "DEFAULTS", {"n_train": 1, "n_test": 1, "n_val": 1, "size": 64, "seed": 0})
    root = sample_dataset_root(tmp_path / "cache")
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["images"]  # written by an earlier version
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert sample_dataset_root(tmp_path / "cache") == root
    assert "images" in json.loads((root / "manifest.json").read_text())
