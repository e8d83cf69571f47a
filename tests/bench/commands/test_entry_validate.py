"""`run_bench.py entry` and `validate` on a tiny run: a run's own entry is accepted; an edited cell, an edited
triplet row (plain, or resealed with fresh checksums so only re-scoring can tell) and a perturbation outside its
eps are each rejected with a line naming what does not hold."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from lipsim_bench.cli import main
from lipsim_bench.io import sha256_file
from lipsim_bench.run.integrity import seal

RUN = ["--n", "8", "--metrics", "pixel-l2", "--evaluations", "natural,apgd", "--set", "apgd.steps=5"]


def quiet_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pixel-l2 on the first 8 bundled triplets, natural and 5-step APGD, adversarial inputs kept."""
    folder = tmp_path_factory.mktemp("submission") / "run"
    assert quiet_main(*RUN, "--save-adversarial", "--out", str(folder))[0] == 0
    return folder


@pytest.fixture
def submission(run: Path, tmp_path: Path) -> Path:
    """A fresh copy of the run with its own entry written inside it (each test may break its copy)."""
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    code, out, err = quiet_main("entry", str(folder), "--metric", "pixel-l2")
    assert code == 0, err
    return folder / "pixel-l2.entry.json"


def validate(entry: Path, *extra: str) -> tuple[int, str]:
    code, out, err = quiet_main("validate", str(entry), *extra)
    return code, out + err


def load(entry: Path) -> dict:
    return json.loads(entry.read_text())


def save(entry: Path, data: dict) -> None:
    entry.write_text(json.dumps(data, indent=2))


def attacked_row(entry: Path) -> tuple[dict, Path, int]:
    """The record of the largest radius at which APGD perturbed a triplet, its CSV, and that row's index
    (found from the files alone, not with the code under test)."""
    data, base = load(entry), entry.parent
    found = []
    for item in data["records"]:
        record = json.loads((base / item["path"]).read_text())
        rows = pd.read_csv(base / item["triplets"]["path"])
        if record["evaluation"]["kind"] == "attack" and "attacked" in rows and rows["attacked"].any():
            found.append((record["threat"]["eps"], item, int(rows.index[rows["attacked"]][0])))
    assert found, "the tiny run attacked no triplet: the fixture no longer exercises re-scoring"
    _, item, index = max(found, key=lambda f: f[0])
    return item, base / item["triplets"]["path"], index


def test_a_runs_own_entry_is_accepted_by_every_check(submission: Path) -> None:
    data = load(submission)
    assert data["kind"] == "re-evaluated" and data["metric"] == {"name": "pixel-l2", "registry": "pixel-l2"}
    assert data["protocol"]["n"] == 8 and data["protocol"]["threat_models"][0]["norm"] == "l2"
    assert data["adversarial"] and all(p["path"].startswith("records/") for p in data["records"])
    assert all("ci_low" in c and "ci_high" in c for c in data["cells"])
    code, out = validate(submission)
    assert code == 0, out
    for check in ("schema", "files", "cells", "rescoring"):
        assert f"{check}: ok" in out
    assert re.search(r"rescoring: ok: [1-9]\d* of \d+ stored input\(s\) and [1-9]\d* of \d+ unperturbed row", out)
    assert "carried flip(s) from inputs the entry lacks" not in out  # eps 2's carried flip re-scored on eps 1's input
    assert out.strip().splitlines()[-1].startswith("verdict: accepted")


def test_an_entry_written_elsewhere_carries_copies_of_its_files(submission: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "entry.json"
    code, _, err = quiet_main("entry", str(submission.parent), "--metric", "pixel-l2", "--out", str(out))
    assert code == 0, err
    shutil.rmtree(submission.parent)  # the run is gone: the entry's folder is the whole submission
    names = {p.name for p in (out.parent / "records").iterdir()}
    assert any(n.endswith(".adversarial.safetensors") for n in names) and any(n.endswith(".csv") for n in names)
    assert validate(out)[0] == 0


def test_an_edited_cell_is_rejected_naming_the_cell_the_claim_and_the_recomputed_score(submission: Path) -> None:
    data = load(submission)
    cell = next(c for c in data["cells"] if c["evaluation"] == "apgd" and c["eps"] == 2.0)
    true = cell["score"]
    cell["score"] = true + 12.5
    save(submission, data)
    code, out = validate(submission)
    assert code == 1
    assert f"cell apgd l2 eps 2 on test: claimed {true + 12.5:.6f} (n 8), recomputed {true:.6f}" in out
    assert "cells: FAILED" in out and "verdict: REJECTED" in out


def test_an_edited_interval_is_rejected(submission: Path) -> None:
    data = load(submission)
    data["cells"][0]["ci_high"] = min(100.0, data["cells"][0]["ci_high"] + 1.0) - 0.5
    save(submission, data)
    code, out = validate(submission)
    assert code == 1 and "claimed ci_high" in out


def test_an_edited_triplet_row_is_rejected_by_its_sha256_and_the_records_checks(submission: Path) -> None:
    _, csv, index = attacked_row(submission)
    rows = pd.read_csv(csv)
    rows.loc[index, "agreement"] = 1.0 - rows.loc[index, "agreement"]
    rows.to_csv(csv, index=False)
    code, out = validate(submission)
    assert code == 1
    assert f"triplets {csv.parent.name}/{csv.name}: its sha256 is" in out and "files: FAILED" in out


def reseal_scaled_distances(entry: Path, item: dict, csv: Path, index: int) -> str:
    """Scale one row's d0 and d1 by 1.1 (its outcome, hence every score, unchanged), then make the record's
    checksum, its CSV's sha256 and the entry's sha256s match again: only re-scoring can tell. Returns its id."""
    rows = pd.read_csv(csv, dtype={"id": str, "group": str})
    rows.loc[index, ["d0", "d1"]] = rows.loc[index, ["d0", "d1"]] * 1.1
    csv.write_bytes(rows.to_csv(index=False).encode())
    json_path = entry.parent / item["path"]
    record = json.loads(json_path.read_text())
    record["triplets_sha256"] = sha256_file(csv)
    json_path.write_text(json.dumps(seal(record), indent=2, sort_keys=True))
    data = load(entry)
    entry_item = next(r for r in data["records"] if r["path"] == item["path"])
    entry_item["sha256"], entry_item["triplets"]["sha256"] = sha256_file(json_path), sha256_file(csv)
    save(entry, data)
    return str(rows.loc[index, "id"])


def test_an_attacked_row_edited_and_resealed_is_caught_by_rescoring_its_stored_input(submission: Path) -> None:
    tid = reseal_scaled_distances(submission, *attacked_row(submission))
    code, out = validate(submission)
    assert code == 1, out
    assert "files: ok" in out and "cells: ok" in out and "rescoring: FAILED" in out
    assert f"triplet {tid}: re-scored d0" in out


def test_a_natural_row_edited_and_resealed_is_caught_by_rescoring_the_clean_images(submission: Path) -> None:
    item = next(r for r in load(submission)["records"] if "__natural__" in r["path"])
    tid = reseal_scaled_distances(submission, item, submission.parent / item["triplets"]["path"], 0)
    code, out = validate(submission)
    assert code == 1 and "files: ok" in out and "cells: ok" in out
    assert f"{item['path']}: triplet {tid}: re-scored d0" in out


def test_without_adversarial_inputs_a_resealed_natural_row_is_still_caught(run: Path, tmp_path: Path) -> None:
    """An entry written with --no-adversarial still has its natural rows re-scored on the clean images."""
    entry = tmp_path / "plain" / "pixel-l2.entry.json"
    assert quiet_main("entry", str(run), "--metric", "pixel-l2", "--no-adversarial", "--out", str(entry))[0] == 0
    assert "adversarial" not in load(entry) or not load(entry)["adversarial"]
    code, out = validate(entry)
    assert code == 0 and "no adversarial inputs in the entry; 8 of 8 natural row(s) re-scored" in out, out
    item = next(r for r in load(entry)["records"] if "__natural__" in r["path"])
    tid = reseal_scaled_distances(entry, item, entry.parent / item["triplets"]["path"], 0)
    code, out = validate(entry)
    assert code == 1 and "files: ok" in out and "cells: ok" in out
    assert f"{item['path']}: triplet {tid}: re-scored d0" in out


def test_a_perturbation_outside_its_eps_is_rejected(submission: Path) -> None:
    data = load(submission)
    item, _, _ = attacked_row(submission)
    stored = next(a for a in data["adversarial"] if a["record"] == item["path"])
    path = submission.parent / stored["path"]
    key = json.loads((submission.parent / item["path"]).read_text())["key"]
    tensors = load_file(path)
    tensors["x_adv"] = (tensors["x_adv"] + 0.1).clamp(0, 1)  # l2 norm ~ 0.1 x sqrt(pixels) >> eps 2
    save_file(tensors, path, metadata={"key": key})
    stored["sha256"] = sha256_file(path)
    save(submission, data)
    code, out = validate(submission)
    assert code == 1, out
    assert "its perturbation has l2 norm" in out and "outside eps 2" in out


def test_a_missing_adversarial_file_is_named(submission: Path) -> None:
    data = load(submission)
    (submission.parent / data["adversarial"][0]["path"]).unlink()
    code, out = validate(submission)
    assert code == 1 and f"adversarial inputs {data['adversarial'][0]['path']}: missing" in out


def test_a_schema_error_is_one_line_naming_the_json_path(submission: Path) -> None:
    data = load(submission)
    del data["cells"][1]["score"]
    save(submission, data)
    code, out = validate(submission)
    assert code == 2 and len(out.strip().splitlines()) == 1
    assert "$.cells[1]: 'score' is a required property" in out
    data["cells"][1]["score"] = 50.0
    data["records"][0]["path"] = "../outside.json"
    save(submission, data)
    code, out = validate(submission)
    assert code == 2 and "$.records[0].path" in out


def test_where_the_data_is_not_here_rescoring_says_it_cannot_run(submission: Path, tmp_path: Path) -> None:
    code, out = validate(submission, "--dataset", f"night:{tmp_path / 'none'}")
    assert code == 2 and "rescoring: CANNOT RUN HERE" in out and "--no-rescore" in out
    code, out = validate(submission, "--no-rescore")
    assert code == 0 and "rescoring: skipped" in out


def test_a_reported_entry_needs_its_source_and_is_not_recomputed(tmp_path: Path) -> None:
    entry = {
        "format": 1,
        "kind": "reported",
        "metric": {"name": "lipsim", "registry": "lipsim"},
        "paper": {"title": "LipSim", "url": "https://arxiv.org/abs/2310.18274", "year": 2024},
        "weights": {"description": "official checkpoint lipsim_margin0.5.pth"},
        "protocol": {"dataset": "night", "split": "test", "n": None, "perturb": "ref", "evaluations": ["natural"], "seeds": []},
        "cells": [{"evaluation": "natural", "split": "test", "norm": None, "eps": None, "score": 85.58, "n": 1824}],
    }  # fmt: skip
    path = tmp_path / "reported.json"
    save(path, entry)
    code, out = validate(path)
    assert code == 0 and "no records to recompute them from" in out
    del entry["paper"]["url"]
    save(path, entry)
    code, out = validate(path)
    assert code == 2 and "$.paper: 'url' is a required property" in out


def test_entry_of_a_metric_the_run_lacks_is_one_line(run: Path, tmp_path: Path) -> None:
    code, out, err = quiet_main("entry", str(run), "--metric", "lipsim-tiny", "--out", str(tmp_path / "e.json"))
    assert code == 2 and "no usable record of it" in err and "pixel-l2" in err


def test_adversarial_inputs_stay_on_the_cpu_as_stored(run: Path) -> None:
    """The fixture's stored inputs are what the rescoring reads: float32 positions and inputs (a guard that the
    run keeps the format bench/evaluations/adversarial.py describes)."""
    files = list((run / "records").glob("*.adversarial.safetensors"))
    assert files
    tensors = load_file(files[0])
    assert set(tensors) == {"position", "x_adv"} and tensors["position"].dtype == torch.long
