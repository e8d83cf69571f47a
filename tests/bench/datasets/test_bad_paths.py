"""Issue 12, class 1: a dataset path never leads outside its root, and the refusal never reveals what exists there."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lipsim_bench.cli import main
from lipsim_bench.datasets import create_dataset
from lipsim_bench.datasets.night import plan_night_fetch
from lipsim_bench.errors import DatasetError
from tests.bench.datasets.test_bapps import make_bapps_subset
from tests.conftest import make_night_tree, write_png


def set_cell(root: Path, row: int, column: str, text: str) -> None:
    """Rewrite one data.csv cell as text (``row`` 0-based), every other cell kept exactly as written."""
    frame = pd.read_csv(root / "data.csv", dtype=str, keep_default_na=False)
    frame.loc[row, column] = text
    frame.to_csv(root / "data.csv", index=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_night_tree(tmp_path / "data" / "nights", [{"split": "test"}] * 3)


def refusal(root: Path, spec: str = "night") -> str:
    with pytest.raises(DatasetError) as info:
        create_dataset(f"{spec}:{root}", "test")
    return str(info.value)


@pytest.mark.parametrize("column", ["ref_path", "left_path", "right_path"])
def test_dotdot_is_refused_naming_row_triplet_and_column(tree: Path, column: str) -> None:
    set_cell(tree, 1, column, "../../secret.png")
    message = refusal(tree)
    assert "data row 2 (triplet '1'), column " + column in message
    assert "'../../secret.png' leads outside the dataset root" in message and "\n" not in message


@pytest.mark.parametrize("written", ["../../secret.png", "ref/000/../../../../secret.png", "ABSOLUTE"])
def test_refusal_is_the_same_whether_or_not_the_outside_file_exists(tree: Path, written: str) -> None:
    outside = tree.parent.parent / "secret.png"
    written = str(outside) if written == "ABSOLUTE" else written
    set_cell(tree, 0, "ref_path", written)
    absent = refusal(tree)
    write_png(outside, np.random.default_rng(0))
    assert refusal(tree) == absent
    assert str(outside) not in absent.replace(repr(written), "")  # the resolved target is never shown


def test_symlink_out_of_the_root_is_refused_whether_or_not_its_target_exists(tree: Path) -> None:
    outside = tree.parent / "elsewhere.png"
    link = tree / "ref" / "000" / "000.png"
    link.unlink()
    link.symlink_to(outside)  # dangling: the target does not exist
    absent = refusal(tree)
    write_png(outside, np.random.default_rng(0))
    assert refusal(tree) == absent
    assert "'ref/000/000.png' leads outside" in absent and "elsewhere" not in absent


def test_symlinked_folder_out_of_the_root_is_refused(tree: Path) -> None:
    os.rename(tree / "distort", tree.parent / "distort")
    (tree / "distort").symlink_to(tree.parent / "distort")
    assert "column left_path" in refusal(tree)


def test_symlinks_inside_the_root_and_a_symlinked_root_are_fine(tree: Path, tmp_path: Path) -> None:
    link = tree / "ref" / "000" / "000.png"
    (tree / "ref" / "000" / "copy.png").write_bytes(link.read_bytes())
    link.unlink()
    link.symlink_to("copy.png")
    (tmp_path / "alias").symlink_to(tree)
    dataset = create_dataset(f"night:{tmp_path / 'alias'}", "test")
    dataset.check_files()
    assert dataset[0]["ref"].shape == (3, 224, 224)


def test_blank_path_is_refused(tree: Path) -> None:
    set_cell(tree, 2, "right_path", "")
    assert "data row 3 (triplet '2'), column right_path: the image path is blank" in refusal(tree)


def test_sample_layout_is_checked_the_same_way(tree: Path) -> None:
    set_cell(tree, 0, "left_path", "/etc/hostname")
    assert "column left_path" in refusal(tree, "sample")


def test_fetch_plan_refuses_before_looking_at_outside_files(tree: Path) -> None:
    set_cell(tree, 0, "ref_path", "/etc/hostname")
    with pytest.raises(DatasetError, match="leads outside the dataset root"):
        plan_night_fetch(tree, "test")


def test_cli_prints_one_line_and_exits_2(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    set_cell(tree, 0, "ref_path", "../../../../../../etc/passwd")
    code = main(
        [
            "--metrics",
            "pixel-l2",
            "--dataset",
            f"night:{tree}",
            "--out",
            str(tmp_path / "run"),
            "--attacks",
            "none",
            "--no-certify",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "column ref_path" in err and "leads outside" in err


@pytest.mark.parametrize("kind", ["image", "judgment"])
def test_bapps_files_symlinked_out_of_the_root_are_refused(tmp_path: Path, kind: str) -> None:
    root = make_bapps_subset(tmp_path / "val" / "cnn", [0.5, 0.5])
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = root / ("p1" if kind == "image" else "judge") / ("000001.png" if kind == "image" else "000001.npy")
    os.rename(victim, outside / victim.name)
    victim.symlink_to(outside / victim.name)
    for spec in (f"bapps:{root}", f"bapps:{tmp_path / 'val'}"):
        with pytest.raises(DatasetError, match=f"BAPPS {kind} .*000001.* leads outside the dataset root"):
            create_dataset(spec, "all")


def test_bapps_subset_folder_symlinked_out_of_the_root_is_refused(tmp_path: Path) -> None:
    make_bapps_subset(tmp_path / "elsewhere" / "cnn", [0.5])
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "cnn").symlink_to(tmp_path / "elsewhere" / "cnn")
    with pytest.raises(DatasetError, match="leads outside the dataset root"):
        create_dataset(f"bapps:{tmp_path / 'val'}", "all")
