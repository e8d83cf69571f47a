from pathlib import Path

import numpy as np
import pytest

from lipsim_bench.datasets import create_dataset
from lipsim_bench.errors import DatasetError
from tests.conftest import write_png


def make_bapps_subset(folder: Path, judgments: list[float], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i, p in enumerate(judgments):
        for sub in ("ref", "p0", "p1"):
            write_png(folder / sub / f"{i:06d}.png", rng, 64)
        (folder / "judge").mkdir(parents=True, exist_ok=True)
        np.save(folder / "judge" / f"{i:06d}.npy", np.array([p]))
    return folder


def test_single_subset(tmp_path: Path) -> None:
    root = make_bapps_subset(tmp_path / "val" / "traditional", [0.0, 0.25, 1.0])
    ds = create_dataset(f"bapps:{root}")
    assert len(ds) == 3 and ds.split == "traditional"
    item = ds[1]
    assert float(item["p"]) == 0.25
    assert item["ref"].shape == (3, 64, 64)
    assert ds.records[1].x0.parent.name == "p0" and ds.records[1].x1.parent.name == "p1"


def test_parent_folder_with_split_choice(tmp_path: Path) -> None:
    make_bapps_subset(tmp_path / "val" / "cnn", [0.5, 0.5])
    make_bapps_subset(tmp_path / "val" / "color", [1.0])
    assert len(create_dataset(f"bapps:{tmp_path / 'val'}", "all")) == 3
    ds = create_dataset(f"bapps:{tmp_path / 'val'}", "color")
    assert len(ds) == 1 and ds.groups == ["color"]
    with pytest.raises(DatasetError, match="unknown split 'deblur'"):
        create_dataset(f"bapps:{tmp_path / 'val'}", "deblur")


def test_bad_judgment_and_layout(tmp_path: Path) -> None:
    root = make_bapps_subset(tmp_path / "s", [0.5])
    np.save(root / "judge" / "000000.npy", np.array([1.5]))
    with pytest.raises(DatasetError, match="fraction in \\[0, 1\\]"):
        create_dataset(f"bapps:{root}")
    with pytest.raises(DatasetError, match="no BAPPS subsets"):
        create_dataset(f"bapps:{tmp_path / 's' / 'ref'}")
