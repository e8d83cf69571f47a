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


def _npz(path: Path) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, a=np.array([0.5]))


@pytest.mark.parametrize(
    "write, words",
    [
        (
            lambda p: np.save(p, np.array([0.5], dtype=object), allow_pickle=True),
            "is pickled data, not a numeric .npy array",
        ),
        (lambda p: np.save(p, np.array(["0.5"])), "holds <U3 values, not numbers"),
        (lambda p: np.save(p, np.array([True])), "holds bool values, not numbers"),
        (lambda p: np.save(p, np.array([0.5 + 1j])), "holds complex128 values, not numbers"),
        (lambda p: np.save(p, np.array([(0.5, 1)], dtype=[("a", "f8"), ("b", "i4")])), "values, not numbers"),
        (
            lambda p: np.save(p, np.zeros((2, 2))),
            "must hold one fraction in [0, 1], got [0.0, 0.0, 0.0, 0.0] (shape (2, 2))",
        ),
        (lambda p: np.save(p, np.array([])), "must hold one fraction in [0, 1], got [] (shape (0,))"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_text("0.5\n"), "is not a .npy array"),
        (lambda p: p.write_bytes(p.read_bytes()[:60]), "is not a readable .npy array"),
        (_npz, "is an .npz archive, not a .npy array"),
    ],
)
def test_an_odd_judgment_file_is_one_line_without_numpys_advice(tmp_path: Path, write, words: str) -> None:
    """Text, booleans, complex numbers, records, pickles, npz archives, empty or truncated files: one line
    naming the file and the fix; never a traceback, never numpy's 'load it unsafely with allow_pickle'."""
    root = make_bapps_subset(tmp_path / "s", [0.5])
    write(root / "judge" / "000000.npy")
    with pytest.raises(DatasetError) as info:
        create_dataset(f"bapps:{root}")
    message = str(info.value)
    assert words in message and "000000.npy" in message and "re-download the dataset" in message
    assert "allow_pickle" not in message and "unsafe" not in message and "\n" not in message


def test_a_judgment_of_any_numeric_type_and_one_value_is_read(tmp_path: Path) -> None:
    root = make_bapps_subset(tmp_path / "s", [0.5, 0.5, 0.5])
    np.save(root / "judge" / "000001.npy", np.float64(0.25))  # 0-d
    np.save(root / "judge" / "000002.npy", np.array([[1]], dtype=np.int64))  # all preferred p1, as an integer
    assert [r.p for r in create_dataset(f"bapps:{root}").records] == [0.5, 0.25, 1.0]
