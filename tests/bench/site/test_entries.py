"""Submitted entries on the site: a re-evaluated entry (written by `run_bench.py entry`) joins the re-evaluated
tables through its checked records; a reported one goes to the reported section only; an entry failing the
cheap checks (schema, files, records, cells) is left out, said in one line."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from lipsim_bench.cli import main
from tests.bench.site.conftest import CLAIMED
from tests.bench.site.html_tables import tables


def _build(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["leaderboard", *argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def entry_site(tiny_runs: list[Path], entry_file: Path, reported_entry: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("entry-site") / "site"
    code, stdout, err = _build(str(tiny_runs[0]), str(entry_file), str(reported_entry), "--out", str(out))
    assert code == 0 and not err, err
    assert "2 of 2 entr(y/ies) shown" in stdout
    return out


def test_a_reevaluated_entry_joins_the_reevaluated_tables(entry_site: Path, entry_file: Path) -> None:
    entry = json.loads(entry_file.read_text())
    (table,) = [t for t in tables(entry_site / "index.html") if t.section == "sample-test-ref-n8"]
    assert [row[0] for row in table.rows] == ["pixel-l2"]
    for cell in entry["cells"]:
        label = "natural" if cell["norm"] is None else f"{cell['evaluation']} {cell['norm']} {cell['eps']:g}"
        shown = table.column(label)[0].split()
        assert shown[0] == f"{cell['score']:.2f}" and shown[1] == f"[{cell['ci_low']:.1f},", label
    text = (entry_site / "index.html").read_text()
    assert '<span class="tag">submitted</span> entry sub/ENTRY.json' in text
    page = entry_site / "metrics" / "pixel-l2.html"
    (own,) = [t for t in tables(page) if t.section == "sample-test-ref-n8"]
    records = {r["path"] for r in entry["records"]}
    assert {row[-1] for row in own.rows} <= {f"sub/{r} entry sub/ENTRY.json" for r in records}
    assert len(own.rows) == len(entry["cells"])


def test_a_reported_entry_stays_in_the_reported_section(entry_site: Path) -> None:
    found = tables(entry_site / "index.html")
    claimed = {f"{score:.2f}" for score in CLAIMED}
    assert not any(cell in claimed for t in found if t.section != "reported" for row in t.rows for cell in row)
    rows = [row for t in found if t.section == "reported" for row in t.rows if row[0] == "pixel-l2"]
    assert len(rows) == 1 and rows[0][1] == "Claimed <i>robust</i> pixels (2025)"
    assert sorted(cell for cell in rows[0][2:] if cell) == sorted(claimed)
    assert "Claimed &lt;i&gt;robust&lt;/i&gt; pixels" in (entry_site / "index.html").read_text()  # escaped
    page = (entry_site / "metrics" / "pixel-l2.html").read_text()
    assert "Published numbers for pixel-l2" in page and "33.33" in page


def _broken(entry_file: Path, tmp_path: Path, name: str, edit) -> Path:
    folder = tmp_path / name
    shutil.copytree(entry_file.parent, folder)
    edit(folder / entry_file.name)
    return folder / entry_file.name


def _edit_json(change):
    def edit(path: Path) -> None:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return edit


def _edit_rows(path: Path) -> None:
    data = json.loads(path.read_text())
    csv = path.parent / data["records"][0]["triplets"]["path"]
    csv.write_text(csv.read_text().replace("True", "False", 1))


def test_an_entry_failing_its_checks_is_left_out_in_one_line(
    tiny_runs: list[Path], entry_file: Path, tmp_path: Path
) -> None:
    bad = [
        _broken(entry_file, tmp_path, "score", _edit_json(lambda d: d["cells"][1].update(score=99.0))),
        _broken(entry_file, tmp_path, "rows", _edit_rows),
        _broken(entry_file, tmp_path, "schema", _edit_json(lambda d: d.pop("cells"))),
    ]
    out = tmp_path / "site"
    code, _, err = _build(str(tiny_runs[2]), *map(str, bad), "--out", str(out), "--no-published")
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("warning: left out entry ") for line in lines), err
    assert "score/ENTRY.json: cell apgd l2 eps 0.25 on test: claimed 99.000000" in lines[0]
    assert "rows/ENTRY.json: triplets records/" in lines[1] and "sha256" in lines[1]
    assert "schema/ENTRY.json" in lines[2] and "'cells' is a required property" in lines[2]
    text = (out / "index.html").read_text()
    assert "3 left out" in text and "left out entry score/ENTRY.json" in text
    assert [t.section for t in tables(out / "index.html")] == ["sample-test-x0-n100"]  # nothing of theirs shown
    code, _, err = _build(str(bad[0]), "--out", str(tmp_path / "none"))
    assert code == 2 and err.count("\n") == 2 and "error: no records to show (left out entry score/" in err
