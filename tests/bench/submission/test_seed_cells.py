"""A cell that is the mean over seeds (``--seeds``) names every seed's record and score; validate recomputes each
seed's score, their mean and the interval of the seed-averaged agreement, and rejects an edited seed score."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from lipsim_bench.cli import main

RUN = ["--n", "16", "--metrics", "pixel-l2", "--evaluations", "natural,smoothing", "--set", "smoothing.sigma=2"]
CHEAP = ["--set", "smoothing.n=60", "--set", "smoothing.n0=20", "--set", "smoothing.eps=0.5", "--seeds", "0,1,2"]


def quiet_main(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seeds") / "run"
    assert quiet_main(*RUN, *CHEAP, "--out", str(folder))[0] == 0
    assert quiet_main("entry", str(folder), "--metric", "pixel-l2")[0] == 0
    return folder / "pixel-l2.entry.json"


def folded(path: Path) -> tuple[dict, dict]:
    data = json.loads(path.read_text())
    return data, next(c for c in data["cells"] if "seeds" in c)


def test_a_mean_over_seeds_names_each_seed_and_is_accepted(entry: Path) -> None:
    data, cell = folded(entry)
    assert cell["seeds"] == [0, 1, 2] and len(set(cell["seed_records"])) == 3
    assert len(set(cell["seed_scores"])) > 1  # the seeds disagree: the mean is not any one record's score
    assert cell["score"] == pytest.approx(sum(cell["seed_scores"]) / 3, abs=1e-9)
    assert data["protocol"]["seeds"] == [0, 1, 2]
    code, out = quiet_main("validate", str(entry))
    assert code == 0, out


def test_an_edited_seed_score_is_rejected(entry: Path, tmp_path: Path) -> None:
    copy = tmp_path / entry.name
    data, cell = folded(entry)
    cell["seed_scores"][1] += 6.25
    shutil.copytree(entry.parent / "records", tmp_path / "records")
    copy.write_text(json.dumps(data))
    code, out = quiet_main("validate", str(copy), "--no-rescore")
    assert code == 1 and f"claimed {cell['seed_scores'][1]:.6f} at seed 1" in out
