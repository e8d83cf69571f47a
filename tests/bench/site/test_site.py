"""The leaderboard site, read as files: a table per protocol (rows = metrics) with each cell's interval, a page
per metric with its curves and every cell's provenance, the published cells apart, and bad input as one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lipsim_bench.cli import main
from lipsim_bench.site.model import build_board
from lipsim_bench.site.render import MARKER, prepare, write_site
from tests.bench.site.conftest import METRICS
from tests.bench.site.html_tables import tables


def _records(run: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in (run / "records").glob("*.json")}


def test_a_table_per_protocol_rows_are_metrics(tiny_site: Path) -> None:
    boards = [t for t in tables(tiny_site / "index.html") if t.section.startswith("sample-")]
    by_section = {t.section: t for t in boards}
    assert set(by_section) == {"sample-test-ref-n100", "sample-test-x0-n100"}  # perturbing x0 is another protocol
    ref = by_section["sample-test-ref-n100"]
    assert [row[0] for row in ref.rows] == list(METRICS)
    assert ref.headers[:3] == ["metric", "natural", "apgd l2 0.25"]
    assert {"worst-case l2 0.5", "certified l2 36/255"} <= set(ref.headers)  # the ensemble run's worst case joined
    assert [row[0] for row in by_section["sample-test-x0-n100"].rows] == ["pixel-l2"]
    # every cell shows its score and 95% interval; a metric without a certificate has empty certified cells
    natural = ref.column("natural")
    assert all(len(cell.split()) == 3 and cell.split()[1].startswith("[") for cell in natural), natural
    assert ref.column("certified l2 36/255")[1] == ""  # convsim-tiny has no certificate
    assert ref.column("worst-case l2 0.5")[2] == ""  # no worst case was run for lipsim-tiny
    assert all(link == [f"metrics/{row[0]}.html"] for link, row in zip(ref.links, ref.rows))


def test_scores_are_the_records_scores(tiny_runs: list[Path], tiny_site: Path) -> None:
    ref = next(t for t in tables(tiny_site / "index.html") if t.section == "sample-test-ref-n100")
    for record in _records(tiny_runs[0]).values():
        if record["evaluation"]["name"] != "natural":
            continue
        row = [r for r in ref.rows if r[0] == record["unit"]["metric"]][0]
        assert row[ref.headers.index("natural")].split()[0] == f"{record['scores'][0]['score']:.2f}"


def test_metric_page_gives_every_cells_provenance(tiny_runs: list[Path], tiny_site: Path) -> None:
    page = tiny_site / "metrics" / "lipsim-tiny.html"
    text = page.read_text()
    (table,) = [t for t in tables(page) if t.section == "sample-test-ref-n100"]
    records = [r for r in _records(tiny_runs[0]).values() if r["unit"]["metric"] == "lipsim-tiny"]
    assert len(table.rows) == sum(len(r["scores"]) for r in records)  # one row per cell the table shows
    for name, record in _records(tiny_runs[0]).items():
        if record["unit"]["metric"] != "lipsim-tiny":
            continue
        row = [r for r in table.rows if r[-1] == f"default/records/{name}"]
        assert row, f"no row names {name}"
        cells = dict(zip(table.headers, row[0]))
        assert cells["commit"].startswith(record["provenance"]["git"]["commit"][:10])
        assert cells["seed"] == str(record["unit"]["settings"]["seed"])
        assert cells["compute (s)"] == f"{record['config']['seconds']:.1f} on {record['unit']['settings']['device']}"
        assert cells["n"] == str(record["unit"]["n"])
        assert cells["95% interval"].startswith("[")
    assert records[0]["unit"]["settings"]["weights"] in text  # the weights' sha256, once above the table
    assert f"torch {records[0]['provenance']['packages']['torch']}" in text  # the package set it names
    assert (tiny_site / "img" / "lipsim-tiny__sample-test-ref-n100.png").stat().st_size > 2000
    assert 'src="../img/lipsim-tiny__sample-test-ref-n100.png"' in text


def test_reported_cells_are_kept_apart(tiny_site: Path) -> None:
    index = tiny_site / "index.html"
    found = tables(index)
    reevaluated = [t for t in found if t.section != "reported"]
    reported = [t for t in found if t.section == "reported"]
    assert not any("12.34" in cell for t in reevaluated for row in t.rows for cell in row)
    (table,) = reported
    assert [row[0] for row in table.rows] == ["lipsim-tiny", "only-published"]
    assert table.rows[0][table.headers.index("natural")] == "12.34"
    assert table.rows[1][table.headers.index("natural")] == "77.77"
    text = index.read_text()
    assert "A &lt;b&gt;paper&lt;/b&gt; on metrics" in text and "<b>paper</b>" not in text  # autoescaped
    assert 'id="source-paper2024"' in text and 'href="https://example.org/paper"' in text
    page = (tiny_site / "metrics" / "lipsim-tiny.html").read_text()
    assert "Published numbers for lipsim-tiny" in page and "43.21" in page
    assert "77.77" not in page  # another metric's published cell


def test_without_intervals_the_site_says_so(tiny_runs: list[Path], tmp_path: Path) -> None:
    board = build_board(tiny_runs[:1])
    for protocol in board.protocols:
        for cell in protocol.cells.values():
            cell.ci_low = cell.ci_high = None
    prepare(tmp_path / "site")
    write_site(board, tmp_path / "site", None, ["default"])
    text = (tmp_path / "site" / "index.html").read_text()
    assert 'class="ci"' not in text and "carry no intervals" in text
    assert "No published cells were given" in text


def test_rebuild_replaces_an_earlier_site(tiny_runs: list[Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "site"
    assert main(["leaderboard", str(tiny_runs[2]), "--out", str(out), "--no-published"]) == 0
    (out / "metrics" / "stale.html").write_text("old")
    assert main(["leaderboard", str(tiny_runs[2]), "--out", str(out), "--no-published"]) == 0
    assert sorted(p.name for p in (out / "metrics").iterdir()) == ["pixel-l2.html"]
    assert json.loads((out / MARKER).read_text())["protocols"][0]["slug"] == "sample-test-x0-n100"
    assert "wrote" in capsys.readouterr().out


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_bad_input_is_one_line(tiny_runs: list[Path], published_file: Path, tmp_path: Path, capsys) -> None:
    run = str(tiny_runs[0])
    line = _one_line_error(capsys, ["leaderboard", str(tmp_path), "--out", str(tmp_path / "site")])
    assert "is not a run folder" in line and "records/" in line
    (tmp_path / "empty" / "records").mkdir(parents=True)
    line = _one_line_error(capsys, ["leaderboard", str(tmp_path / "empty"), "--out", str(tmp_path / "site")])
    assert "holds no usable records" in line
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = _one_line_error(capsys, ["leaderboard", run, "--out", str(blocker / "site")])
    assert f"--out {blocker / 'site'}: cannot write there" in line
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    line = _one_line_error(capsys, ["leaderboard", run, "--out", str(foreign)])
    assert "holds other files" in line and (foreign / "notes.txt").read_text() == "keep me"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 1, "sources": {}, "cells": [{"source": "x", "metric": "m"}]}))
    line = _one_line_error(capsys, ["leaderboard", run, "--out", str(tmp_path / "s2"), "--published", str(bad)])
    assert "cells/0" in line and "required" in line
    line = _one_line_error(capsys, ["leaderboard", "--out", str(tmp_path / "s3")])
    assert "required" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a read-only folder's permissions")
def test_read_only_out_is_one_line(tiny_runs: list[Path], tmp_path: Path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    line = _one_line_error(capsys, ["leaderboard", str(tiny_runs[0]), "--out", str(locked / "site")])
    assert "cannot write there" in line


def test_a_damaged_record_is_left_out_and_named(tiny_runs: list[Path], tmp_path: Path, capsys) -> None:
    import shutil

    run = tmp_path / "ensemble"
    shutil.copytree(tiny_runs[1], run)
    damaged = sorted((run / "records").glob("pixel-l2__worst-case__*.json"))[0]
    record = json.loads(damaged.read_text())
    record["scores"][0]["score"] = 99.0  # an edited score: its checksum no longer holds
    damaged.write_text(json.dumps(record))
    out = tmp_path / "site"
    assert main(["leaderboard", str(run), "--out", str(out), "--no-published"]) == 0
    text = (out / "index.html").read_text()
    assert f"skipped {damaged.name} of ensemble" in text and "1 left out (records that fail" in text
    (table,) = tables(out / "index.html")
    eps = record["scores"][0]["eps"]
    assert table.rows[0][0] == "pixel-l2" and table.column(f"worst-case l2 {eps:g}")[0] == ""
    assert "99.00" not in text
