from pathlib import Path

import pandas as pd
import pytest
import torch

from lipsim_bench.datasets import create_dataset
from lipsim_bench.errors import DatasetError
from tests.conftest import make_night_tree


def test_votes_filter_and_splits(night_tree: Path) -> None:
    sizes = {
        s: len(create_dataset(f"night:{night_tree}", s))
        for s in ("train", "val", "test_imagenet", "test_no_imagenet", "test")
    }
    assert sizes == {"train": 2, "val": 2, "test_imagenet": 3, "test_no_imagenet": 3, "test": 6}


def test_test_split_keeps_its_halves_as_groups(night_tree: Path) -> None:
    ds = create_dataset(f"night:{night_tree}", "test")
    assert ds.groups == ["test_imagenet", "test_no_imagenet"]


def test_item_is_224_rgb_in_unit_range_and_p_is_right_vote(night_tree: Path) -> None:
    ds = create_dataset(f"night:{night_tree}", "val")
    item = ds[0]
    for key in ("ref", "x0", "x1"):
        assert item[key].shape == (3, 224, 224)
        assert 0.0 <= float(item[key].min()) and float(item[key].max()) <= 1.0
    assert float(item["p"]) == 0.0
    assert item["id"] == "2"


def test_x0_is_left_and_x1_is_right(night_tree: Path) -> None:
    ds = create_dataset(f"night:{night_tree}", "train")
    rec = ds.records[0]
    assert rec.x0.name.endswith("_0.png") and rec.x1.name.endswith("_1.png")


def test_columns_are_read_by_name_not_position(tmp_path: Path, night_tree: Path) -> None:
    frame = pd.read_csv(night_tree / "data.csv")
    frame[list(reversed(frame.columns))].to_csv(night_tree / "data.csv", index=False)
    assert len(create_dataset(f"night:{night_tree}", "test")) == 6


def test_is_imagenet_as_strings(tmp_path: Path) -> None:
    root = make_night_tree(
        tmp_path / "n", [{"split": "test", "is_imagenet": "true"}, {"split": "test", "is_imagenet": "False"}]
    )
    assert len(create_dataset(f"night:{root}", "test_imagenet")) == 1


def test_missing_column_is_named(night_tree: Path) -> None:
    pd.read_csv(night_tree / "data.csv").drop(columns=["votes"]).to_csv(night_tree / "data.csv", index=False)
    with pytest.raises(DatasetError, match="lacks column.*votes"):
        create_dataset(f"night:{night_tree}", "test")


def test_missing_root_and_csv(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset root not found"):
        create_dataset(f"night:{tmp_path / 'nope'}", "test")
    with pytest.raises(DatasetError, match="data.csv not found"):
        create_dataset(f"night:{tmp_path}", "test")


def test_unknown_split(night_tree: Path) -> None:
    with pytest.raises(DatasetError, match="unknown split 'tset'"):
        create_dataset(f"night:{night_tree}", "tset")


def test_missing_and_corrupt_images_are_named(night_tree: Path) -> None:
    ds = create_dataset(f"night:{night_tree}", "train")
    ds.records[0].x1.unlink()
    with pytest.raises(DatasetError, match="image missing: .*_1.png"):
        ds.check_files()
    ds.records[1].ref.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="image unreadable: .*001.png"):
        ds[1]


def test_head_takes_first_n(night_tree: Path) -> None:
    ds = create_dataset(f"night:{night_tree}", "test").head(4)
    assert [r.id for r in ds.records] == ["4", "5", "6", "7"]
    with pytest.raises(DatasetError):
        ds.head(0)


def test_resize_is_bicubic_like_pil(night_tree: Path) -> None:
    import numpy as np
    from PIL import Image

    ds = create_dataset(f"night:{night_tree}", "train")
    with Image.open(ds.records[0].ref) as img:
        expected = np.asarray(img.convert("RGB").resize((224, 224), Image.BICUBIC), dtype=np.float32) / 255
    assert torch.allclose(ds[0]["ref"], torch.from_numpy(expected).permute(2, 0, 1))


def test_images_are_decoded_once_and_read_back_identically(night_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run reads every image once per unit: the dataset decodes each file once, within its memory budget."""
    import lipsim_bench.datasets.base as base
    from lipsim_bench.datasets.images import load_image

    calls: list[Path] = []
    real = base.load_image_uint8
    monkeypatch.setattr(base, "load_image_uint8", lambda path, size: calls.append(path) or real(path, size))
    dataset = create_dataset(f"night:{night_tree}", "test")
    first = [dataset[i] for i in range(len(dataset))]
    second = [dataset[i] for i in range(len(dataset))]
    assert len(calls) == 3 * len(dataset)  # not 6: the second pass came from memory
    for a, b, rec in zip(first, second, dataset.records):
        assert torch.equal(a["ref"], b["ref"]) and torch.equal(a["ref"], load_image(rec.ref, 224))
    monkeypatch.setattr(base, "IMAGE_CACHE_BYTES", 0)  # no budget: every read decodes again
    calls.clear()
    uncached = create_dataset(f"night:{night_tree}", "test")
    [uncached[i] for i in range(len(uncached))] + [uncached[i] for i in range(len(uncached))]
    assert len(calls) == 6 * len(uncached)
