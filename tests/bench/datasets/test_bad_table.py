"""Issue 12, class 3: data.csv is read exactly as written, or refused with the file, row, column and value."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lipsim_bench.cli import main
from lipsim_bench.datasets import create_dataset
from lipsim_bench.errors import DatasetError
from tests.bench.datasets.test_bad_paths import set_cell
from tests.conftest import make_night_tree

COLUMNS = ("id", "left_vote", "right_vote", "votes", "ref_path", "left_path", "right_path", "split", "is_imagenet")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_night_tree(tmp_path / "nights", [{"split": "test"}] * 3)


def refusal(root: Path, split: str = "test") -> str:
    with pytest.raises(DatasetError) as info:
        create_dataset(f"night:{root}", split)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("written", ["007", "3001.0", "1e3", " 7", "a,b", "NaN", "None"])
def test_ids_are_read_as_the_text_written(tree: Path, written: str) -> None:
    set_cell(tree, 1, "id", written)
    assert [r.id for r in create_dataset(f"night:{tree}", "test").records] == ["0", written, "2"]


def test_ids_that_type_inference_would_merge_stay_distinct(tree: Path) -> None:
    for row, written in enumerate(["7", "007", "7.0"]):
        set_cell(tree, row, "id", written)
    assert [r.id for r in create_dataset(f"night:{tree}", "test").records] == ["7", "007", "7.0"]


def test_duplicate_id_names_both_rows(tree: Path) -> None:
    set_cell(tree, 2, "id", "0")
    assert "data row 3, column id: id '0' is already used on data row 1" in refusal(tree)


def test_blank_id_is_refused(tree: Path) -> None:
    set_cell(tree, 1, "id", "  ")
    assert "data row 2, column id: value '  ' is a blank id" in refusal(tree)


BAD_CELLS = [
    ("votes", "6.5", "not a whole number"),
    ("votes", "inf", "not a finite number"),
    ("votes", "nan", "not a finite number"),
    ("votes", "", "not a number"),
    ("votes", "-6", "not a whole number"),
    ("votes", "six", "not a number"),
    ("right_vote", "nan", "not a finite number"),
    ("right_vote", "inf", "not a finite number"),
    ("right_vote", "", "not a number"),
    ("right_vote", "1.5", "not a fraction in [0, 1]"),
    ("left_vote", "NaN", "not a finite number"),
    ("left_vote", "-inf", "not a finite number"),
    ("is_imagenet", "Ture", "not a boolean"),
    ("is_imagenet", "", "not a boolean"),
    ("split", "Test", "not a split name"),
    ("split", "test ", "not a split name"),
    ("split", "", "not a split name"),
]


@pytest.mark.parametrize(("column", "text", "why"), BAD_CELLS)
def test_bad_cell_is_refused_naming_file_row_triplet_column_and_value(
    tree: Path, column: str, text: str, why: str
) -> None:
    set_cell(tree, 1, column, text)
    message = refusal(tree)
    assert f"data.csv, data row 2 (triplet '1'), column {column}: value {text!r} is {why}" in message


def test_bad_cell_in_a_row_the_votes_filter_drops_is_still_refused(tmp_path: Path) -> None:
    root = make_night_tree(tmp_path / "n", [{"split": "test"}, {"split": "test", "votes": 3}])
    set_cell(root, 1, "right_vote", "nan")
    assert "data row 2 (triplet '1'), column right_vote" in refusal(root)


@pytest.mark.parametrize("spelling", ["True", "true", "TRUE", "1", "1.0", "yes"])
def test_known_boolean_spellings(tree: Path, spelling: str) -> None:
    set_cell(tree, 0, "is_imagenet", spelling)
    assert [r.id for r in create_dataset(f"night:{tree}", "test_imagenet").records] == ["0"]


def test_absent_split_says_which_splits_the_file_has(tree: Path) -> None:
    message = refusal(tree, "val")
    assert "has no triplets of split 'val' (it holds: test_no_imagenet 3)" in message


def test_split_under_the_votes_filter_says_so(tmp_path: Path) -> None:
    root = make_night_tree(tmp_path / "n", [{"split": "val", "votes": 5}, {"split": "test"}])
    assert "split 'val' of" in refusal(root, "val") and "none with votes >= 6" in refusal(root, "val")


def test_column_named_twice_is_refused(tree: Path) -> None:
    text = (tree / "data.csv").read_text().splitlines()
    (tree / "data.csv").write_text("\n".join([text[0] + ",votes"] + [line + ",1" for line in text[1:]]) + "\n")
    assert "names column(s) votes more than once" in refusal(tree)


def test_ragged_csv_is_one_line(tree: Path) -> None:
    with open(tree / "data.csv", "a") as handle:
        handle.write("9,0,1,6,a,b,c,test,False,extra,fields\n")
    assert "is not a readable CSV" in refusal(tree)


def test_cli_bad_cell_is_one_line_exit_2(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    set_cell(tree, 0, "votes", "inf")
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
    assert code == 2 and err.count("\n") == 1 and "column votes: value 'inf'" in err, err


# --- properties over whole tables (images are not read when the dataset is built, so none are written) ---

ID_TEXT = st.one_of(
    st.from_regex(r"\A[0-9]{1,4}(\.0|e1)?\Z"),  # what type inference would rewrite: 007, 3001.0, 1e1
    st.sampled_from(["NA", "nan", "None", "True", "-0"]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8).filter(lambda s: s.strip()),
)


def write_table(root: Path, rows: list[dict[str, str]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "data.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def valid_row(i: int, triplet: str, p: float) -> dict[str, str]:
    return {
        "id": triplet,
        "left_vote": repr(1 - p),
        "right_vote": repr(p),
        "votes": "6",
        "ref_path": f"ref/000/{i}.png",
        "left_path": f"distort/000/{i}_0.png",
        "right_path": f"distort/000/{i}_1.png",
        "split": "test",
        "is_imagenet": "False",
    }


TABLES = st.lists(st.tuples(ID_TEXT, st.floats(0.0, 1.0)), min_size=1, max_size=6, unique_by=lambda r: r[0])
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(table=TABLES)
def test_any_valid_table_round_trips_ids_and_p_exactly(tmp_path: Path, table: list[tuple[str, float]]) -> None:
    root = tmp_path / "prop"
    write_table(root, [valid_row(i, t, p) for i, (t, p) in enumerate(table)])
    records = create_dataset(f"night:{root}", "test").records
    assert [(r.id, r.p) for r in records] == table


BAD = {
    "id": ["", " ", "DUPLICATE"],
    "votes": ["6.5", "inf", "nan", "", "x", "-1"],
    "right_vote": ["nan", "inf", "-0.1", "1.5", ""],
    "left_vote": ["nan", "2", ""],
    "split": ["Test", "", "TRAIN", "holdout"],
    "is_imagenet": ["maybe", "", "Ture"],
    "ref_path": ["../x.png", "/etc/hostname", ""],
    "left_path": ["a/../../x.png"],
    "right_path": ["/"],
}


@SETTINGS
@given(table=TABLES, data=st.data())
def test_any_single_corrupted_cell_is_a_dataset_error_naming_it(
    tmp_path: Path, table: list[tuple[str, float]], data: st.DataObject
) -> None:
    rows = [valid_row(i, t, p) for i, (t, p) in enumerate(table)]
    row = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.sampled_from(sorted(BAD)))
    text = data.draw(st.sampled_from(BAD[column]))
    if text == "DUPLICATE":
        if len(rows) < 2:
            return
        first, row = sorted((row, (row + 1) % len(rows)))  # the later of the two rows is the one refused
        text = rows[first]["id"]
    rows[row][column] = text
    root = tmp_path / "prop"
    write_table(root, rows)
    with pytest.raises(DatasetError) as info:
        create_dataset(f"night:{root}", "test")
    assert f"data row {row + 1}" in str(info.value) and f"column {column}" in str(info.value)
    assert "\n" not in str(info.value)
