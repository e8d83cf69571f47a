"""What an entry states about its records besides the scores (each cell's seeds and seed, the setting a variant's
name carries, the interval's method, the protocol's attacks and evaluations) is checked against the records: an
entry claiming 100-step attacks over 2-step records, or seeds it never ran, is rejected with the line naming it."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from lipsim_bench.cli import main
from lipsim_bench.submission.cells import cell_name

RUN = ["--n", "8", "--metrics", "pixel-l2", "--evaluations", "natural,apgd", "--set", "apgd.steps=2"]
CHEAP = ["--eps", "1,2", "--seeds", "0,1"]


def quiet_main(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stated") / "run"
    assert quiet_main(*RUN, *CHEAP, "--out", str(folder))[0] == 0
    assert quiet_main("entry", str(folder), "--metric", "pixel-l2")[0] == 0
    return folder / "pixel-l2.entry.json"


def folded(data: dict) -> dict:
    return next(c for c in data["cells"] if "seeds" in c)


def natural(data: dict) -> dict:
    return next(c for c in data["cells"] if c["evaluation"] == "natural")


def attacks_of_100_steps(data: dict) -> None:
    for attack in data["protocol"]["attacks"]:
        attack["options"]["steps"] = 100


EDITS: dict[str, tuple[Callable[[dict], None], str]] = {
    "seeds it never ran": (lambda d: folded(d).update(seeds=[0, 5]), "claimed seeds [0, 5], its seed_records are"),
    "a seed score too many": (
        lambda d: folded(d).update(seed_scores=[*folded(d)["seed_scores"], 50.0]),
        "one item per seed, got 2 / 3 / 2",
    ),
    "another seed": (lambda d: natural(d).update(seed=7), "claimed seed 7, its record"),
    "another interval method": (lambda d: natural(d).update(ci_method="bootstrap"), "claimed ci_method 'bootstrap'"),
    "a setting in the name": (
        lambda d: folded(d).update(evaluation="apgd(steps=100)"),
        "named 'apgd(steps=100)', but its record's setting has steps=2, not steps=100",
    ),
    "100-step attacks": (attacks_of_100_steps, "protocol.attacks: the entry states apgd steps 100 (its records: 2)"),
    "fewer evaluations": (
        lambda d: d["protocol"].update(evaluations=["natural"]),
        'protocol.evaluations: the entry states not "apgd"',
    ),
}


def test_the_runs_own_entry_states_its_records(entry: Path) -> None:
    data = json.loads(entry.read_text())
    assert folded(data)["seeds"] == [0, 1] and data["protocol"]["attacks"][0]["options"]["steps"] == 2
    code, out = quiet_main("validate", str(entry), "--no-rescore")
    assert code == 0, out


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_stated_claim_its_records_do_not_hold_is_rejected(entry: Path, tmp_path: Path, edit: str) -> None:
    change, line = EDITS[edit]
    data = json.loads(entry.read_text())
    change(data)
    shutil.copytree(entry.parent / "records", tmp_path / "records")
    (tmp_path / entry.name).write_text(json.dumps(data))
    code, out = quiet_main("validate", str(tmp_path / entry.name), "--no-rescore")
    assert code == 1 and line in out, out


def test_an_entry_moved_without_its_records_recomputes_nothing_and_says_so(entry: Path, tmp_path: Path) -> None:
    shutil.copy(entry, tmp_path / entry.name)
    code, out = quiet_main("validate", str(tmp_path / entry.name), "--no-rescore")
    assert code == 1 and "missing (hand it in beside the entry" in out
    assert "cells: ok: 0 of" in out and "not, their records failed the file checks" in out, out


def test_an_entry_written_into_the_runs_records_folder_is_refused(entry: Path) -> None:
    code, out = quiet_main(
        "entry", str(entry.parent), "--metric", "pixel-l2", "--out", str(entry.parent / "records/e.json")
    )
    assert code == 2 and "inside the run's records/ folder" in out and out.count("\n") == 1, out
    assert not (entry.parent / "records" / "e.json").exists() and not (entry.parent / "records" / "records").exists()


def test_a_rejected_cell_names_its_radius_as_the_tables_do() -> None:
    assert cell_name({"evaluation": "certified", "norm": "l2", "eps": 72 / 255, "split": "test"}) == (
        "certified l2 eps 72/255 on test"
    )
