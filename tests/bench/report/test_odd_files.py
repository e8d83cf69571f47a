"""`report` on odd but possible folders: one line naming the thing and the fix (exit 2), or a table
that skips the odd file and says so; never a traceback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from lipsim_bench.cli import main


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["--metrics", "pixel-l2", "--n", "4", "--attacks", "none", "--no-certify", "--out", str(run)]) == 0
    return run


def _odd_provenance(records: Path) -> None:
    (records / "zz.json").write_text(json.dumps({"provenance": {"git": "x", "packages": 3, "time": 5, "time_ns": "a"}}))


def _only_triplet_csvs(records: Path) -> None:
    for path in records.glob("*.json"):
        path.unlink()


def _records_is_a_file(records: Path) -> None:
    shutil.rmtree(records)
    records.write_text("x")


CASES: list[tuple[str, Callable[[Path], None], int, str]] = [
    ("a JSON list", lambda r: (r / "zz.json").write_text("[1, 2]"), 0, "skipped record"),
    ("an empty JSON", lambda r: (r / "zz.json").write_text(""), 0, "skipped record"),
    ("garbled bytes", lambda r: (r / "zz.json").write_bytes(b"\xff\xfe\x00garbage"), 0, "skipped record"),
    ("odd provenance", _odd_provenance, 0, "skipped record"),
    ("only triplet CSVs", _only_triplet_csvs, 2, "no usable records in"),
    ("records/ is a file", _records_is_a_file, 2, "has no records/ folder"),
]


@pytest.mark.parametrize("name, damage, code, words", CASES, ids=[c[0] for c in CASES])
def test_report_on_an_odd_folder(
    capsys, tmp_path: Path, finished: Path, name: str, damage, code: int, words: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    damage(run / "records")
    assert main(["report", str(run)]) == code
    captured = capsys.readouterr()
    assert words in captured.err and "Traceback" not in captured.err
    if code == 2:
        assert len(captured.err.strip().splitlines()) == 1
    else:
        assert (
            "| pixel-l2 |" in captured.out and "1 unreadable, altered or old-format record(s) ignored" in captured.out
        )


@pytest.mark.parametrize("out", ["file", "file/under"])
def test_report_into_a_file_is_one_line_that_does_not_talk_of_units(
    capsys, tmp_path: Path, finished: Path, out: str
) -> None:
    (tmp_path / "file").write_text("x")
    assert main(["report", str(finished), "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "units" not in err and "Traceback" not in err
