"""Stored records are verified before reuse (run) and before reporting: damage is recomputed or skipped, never trusted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lipsim_bench.cli import main
from lipsim_bench.report.collect import read_records
from lipsim_bench.run.records import RecordStore, Unit

ARGV = ["--metrics", "pixel-l2", "--evaluations", "natural", "--batch-size", "2"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run folder (pixel-l2, natural) on a 20-row per-triplet CSV, reused by every example."""
    root = tmp_path_factory.mktemp("integrity")
    store = RecordStore(root)
    unit = Unit("pixel-l2", "night", "test", None, "natural", {"seed": 0})
    rows = pd.DataFrame(
        {
            "id": [f"{i:03d}" for i in range(20)],
            "group": ["imagenet"] * 20,
            "evaluation": "natural",
            "norm": None,
            "eps": None,
            "agreement": [i % 2 for i in range(20)],
        }
    )
    body = {
        "evaluation": {"name": "natural", "kind": "clean", "version": 1, "output_csv": None},
        "threat": None,
        "position": 0,
        "applies": True,
        "scores": [{"split": "test", "evaluation": "natural", "norm": None, "eps": None, "score": 50.0, "n": 20}],
        "notes": [],
        "rows": 20,
        "config": {"metrics": ["pixel-l2"]},
    }
    store.save(unit, body, rows)
    (root / "unit.json").write_text(
        json.dumps(
            {
                "metric": unit.metric,
                "dataset": unit.dataset,
                "split": unit.split,
                "n": unit.n,
                "evaluation": unit.evaluation,
                "settings": unit.settings,
            }
        )
    )
    return root


def _unit(root: Path) -> Unit:
    return Unit(**json.loads((root / "unit.json").read_text()))


def _copy(stored: Path, tmp: Path) -> tuple[Path, Path, Path]:
    run = tmp / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(stored, run)
    json_path = next((run / "records").glob("*.json"))
    return run, json_path, json_path.with_name(json_path.name.replace(".json", ".triplets.csv"))


def _retyped(value: object) -> object:
    """The same value as another JSON type."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return [value]
    if value is None:
        return 0
    return json.dumps(value)


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a parsed JSON document."""
    out = [prefix] if prefix else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        out += _paths(child, prefix + (key,))
    return out


def _check(run: Path, original: tuple[dict, pd.DataFrame], messages: list[str]) -> None:
    """Reuse either gets the original back exactly, or refuses it with one message; report never crashes."""
    loaded = RecordStore(run, on_invalid=messages.append).load(_unit(run))
    if loaded is not None:
        assert loaded[0] == original[0]
        pd.testing.assert_frame_equal(loaded[1], original[1])
    else:
        assert len(messages) == 1 and "invalid record" in messages[0]
    try:
        collected = read_records([run])
    except Exception as exc:  # only "no usable records" is allowed, as a BenchError
        assert type(exc).__name__ == "BenchError" and "no usable records" in str(exc)
    else:
        assert collected.scores["n"].tolist() == [20] and len(collected.triplets) == 20


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(which=st.sampled_from(["json", "csv"]), data=st.data())
def test_truncated_record_files_are_never_reused(stored: Path, tmp_path: Path, which: str, data: st.DataObject) -> None:
    run, json_path, csv_path = _copy(stored, tmp_path)
    original = RecordStore(run).load(_unit(run))
    path = json_path if which == "json" else csv_path
    blob = path.read_bytes()
    cut = data.draw(st.integers(0, len(blob) - 1))
    path.write_bytes(blob[:cut])
    _check(run, original, [])
    if which == "csv" or cut < len(blob.rstrip()):  # only dropping the JSON's final newline keeps the record
        assert RecordStore(run).load(_unit(run)) is None


@FAST
@given(which=st.sampled_from(["json", "csv"]), data=st.data())
def test_flipped_bytes_are_never_reused_as_different_numbers(
    stored: Path, tmp_path: Path, which: str, data: st.DataObject
) -> None:
    run, json_path, csv_path = _copy(stored, tmp_path)
    original = RecordStore(run).load(_unit(run))
    path = json_path if which == "json" else csv_path
    blob = bytearray(path.read_bytes())
    at = data.draw(st.integers(0, len(blob) - 1))
    blob[at] ^= data.draw(st.integers(1, 255))
    path.write_bytes(bytes(blob))
    _check(run, original, [])


@FAST
@given(data=st.data())
def test_a_value_of_another_type_is_never_reused(stored: Path, tmp_path: Path, data: st.DataObject) -> None:
    run, json_path, _ = _copy(stored, tmp_path)
    original = RecordStore(run).load(_unit(run))
    record = json.loads(json_path.read_text())
    where = data.draw(st.sampled_from(_paths(record)))
    parent = record
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = _retyped(parent[where[-1]])
    json_path.write_text(json.dumps(record, indent=2))
    messages: list[str] = []
    _check(run, original, messages)
    assert RecordStore(run).load(_unit(run)) is None


def test_a_truncated_triplets_csv_is_recomputed_with_one_line(capsys, night_tree: Path, tmp_path: Path) -> None:
    """The reported bug: 20-row CSV cut to 5 rows was reused and the table said n = 20 over 5 rows."""
    out = tmp_path / "run"
    argv = ARGV + ["--dataset", f"night:{night_tree}", "--out", str(out)]
    assert main(argv) == 0
    csv_path = next((out / "records").glob("*.triplets.csv"))
    whole = csv_path.read_bytes()
    csv_path.write_bytes(b"\n".join(whole.split(b"\n")[:3]) + b"\n")
    capsys.readouterr()
    assert main(argv) == 0
    out_text, err = capsys.readouterr()
    assert "computed all 1 unit(s)" in out_text
    assert (
        err.count("invalid record") == 1 and "sha256" in err and csv_path.name.replace(".triplets.csv", ".json") in err
    )
    assert "invalid record" in (out / "run.log").read_text()
    assert csv_path.read_bytes() == whole  # recomputed, whole again


def test_report_skips_a_damaged_record_with_a_footer_note(capsys, night_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert (
        main(ARGV + ["--metrics", "pixel-l2,convsim-tiny", "--dataset", f"night:{night_tree}", "--out", str(out)]) == 0
    )
    json_path = sorted((out / "records").glob("convsim-tiny*.json"))[0]
    record = json.loads(json_path.read_text())
    record["scores"][0]["n"] = "4"
    json_path.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    out_text, err = capsys.readouterr()
    assert "1 unreadable, altered or old-format record(s) ignored" in out_text
    assert "skipped record" in err and json_path.name in err and "Traceback" not in err
    assert set(pd.read_csv(out / "scores.csv")["metric"]) == {"pixel-l2"}
