"""The entry schema: a valid JSON Schema 2020-12 shipped with the package; paths cannot leave the entry's folder;
an error is one line naming the JSON path; a reported entry must cite its source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from lipsim_bench.errors import BenchError
from lipsim_bench.submission.files import resolve_in
from lipsim_bench.submission.schema import entry_schema, read_entry, schema_problems

SHA = "a" * 64


def entry(**changes: object) -> dict:
    """A minimal re-evaluated entry (one cell, one record)."""
    base = {
        "format": 1,
        "kind": "re-evaluated",
        "metric": {"name": "pixel-l2", "registry": "pixel-l2"},
        "weights": {"description": "none (no learned weights)", "id": "none (no learned weights)", "files": []},
        "protocol": {"dataset": "sample", "split": "test", "n": 8, "perturb": "ref", "evaluations": ["natural"], "seeds": [0]},
        "cells": [{"evaluation": "natural", "split": "test", "norm": None, "eps": None, "score": 50.0, "n": 8, "record": "records/a.json"}],
        "records": [{"path": "records/a.json", "sha256": SHA, "triplets": {"path": "records/a.triplets.csv", "sha256": SHA}}],
    }  # fmt: skip
    base.update(changes)
    return base


def test_the_schema_is_valid_and_a_minimal_entry_conforms() -> None:
    Draft202012Validator.check_schema(entry_schema())
    assert schema_problems(entry()) == []


@pytest.mark.parametrize(
    "path", ["../a.json", "/etc/a.json", "records/../../a.json", "C:/a.json", "records\\a.json", "..", "a/../b.json"]
)
def test_a_path_out_of_the_entry_folder_is_refused(path: str) -> None:
    records = [{"path": "records/a.json", "sha256": SHA, "triplets": {"path": path, "sha256": SHA}}]
    problems = schema_problems(entry(records=records))
    assert problems and problems[0].startswith("$.records[0].triplets.path:")


@pytest.mark.parametrize("path", ["records/a.csv", "a..b/c.csv", "records/.hidden.csv"])
def test_ordinary_relative_paths_are_kept(path: str, tmp_path: Path) -> None:
    records = [{"path": "records/a.json", "sha256": SHA, "triplets": {"path": path, "sha256": SHA}}]
    assert schema_problems(entry(records=records)) == []
    assert resolve_in(tmp_path, path) is not None
    assert resolve_in(tmp_path, "../x") is None and resolve_in(tmp_path, "/x") is None


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"kind": "claimed"}, "$.kind"),
        ({"cells": []}, "$.cells"),
        ({"records": []}, "$.records"),  # a re-evaluated entry has records
        ({"weights": {"description": "x", "files": [{"name": "w.pth", "sha256": "XYZ"}]}}, "$.weights.files[0].sha256"),
        ({"extra": 1}, "$"),
    ],
)
def test_each_error_names_its_json_path(change: dict, where: str) -> None:
    problems = schema_problems(entry(**change))
    assert problems and problems[0].startswith(f"{where}:")


def test_a_cell_needs_its_record_a_score_in_range_and_a_reported_entry_its_source() -> None:
    cells = [{"evaluation": "natural", "split": "test", "norm": None, "eps": None, "score": 150, "n": 8}]
    problems = schema_problems(entry(cells=cells))
    assert any(p.startswith("$.cells[0]: 'record' is a required property") for p in problems)
    assert any(p.startswith("$.cells[0].score: 150 is greater than the maximum of 100") for p in problems)
    reported = entry(kind="reported", cells=cells[:1])
    reported["cells"][0]["score"] = 85.0
    del reported["records"]
    assert schema_problems(reported)[0] == "$: 'paper' is a required property"
    reported["paper"] = {"title": "LipSim", "url": "https://arxiv.org/abs/2310.18274"}
    assert schema_problems(reported) == []


def test_reading_a_broken_entry_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text("{")
    with pytest.raises(BenchError, match="is not valid JSON"):
        read_entry(path)
    broken = entry()
    del broken["metric"]["registry"]
    path.write_text(json.dumps(broken))
    with pytest.raises(BenchError, match=r"\$\.metric: 'registry' is a required property") as caught:
        read_entry(path)
    assert "\n" not in str(caught.value)
