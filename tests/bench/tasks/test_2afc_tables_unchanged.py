"""The task layer left the 2AFC tables as they were: reporting the committed reference runs' records again writes
their committed tables byte for byte (scores.md, scores.tex, scores.csv, triplets.csv), whichever of the report's
paths they take (a plain run, an ensemble with transfer rows, fractional interval methods, smoothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lipsim_bench.report.outputs import report_runs

REFERENCE = Path(__file__).resolve().parents[3] / "results" / "reference"
FILES = ("scores.md", "scores.tex", "scores.csv", "triplets.csv")


@pytest.mark.parametrize("run", ["sample-test", "sample-radii", "sample-smoothing"])
def test_reporting_a_reference_run_again_writes_its_tables_byte_for_byte(run: str, tmp_path: Path) -> None:
    folder = REFERENCE / run
    if not (folder / "records").is_dir():
        pytest.skip(f"{folder} is not in this checkout")
    report_runs([folder], tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), f"{run}/{name} differs"
