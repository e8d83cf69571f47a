"""A score is what its own rows give, within 0..100: a plugin's 150, NaN or empty result is one line naming it
(exit 2, nothing in a table), and a record whose score was edited and resealed is refused by `report` and a rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lipsim_bench.cli import main
from lipsim_bench.evaluations.registry import EVALUATIONS
from lipsim_bench.run.integrity import seal
from lipsim_bench.run.scorecheck import score_problem

PLUGIN = """
import numpy as np
import pandas as pd
import torch

from lipsim_bench.evaluations import Evaluation, Kind, register_evaluation
from lipsim_bench.evaluations.base import natural_agreement


@register_evaluation
class Odd(Evaluation):
    name = "{name}"
    kind = Kind.CLEAN

    def run(self, metric, batches, ctx):
        parts = [item.rows(self.name, None, np.nan, {agreement}) for item in batches]
        return {result}
"""

CASES = {
    "too-high": ("1.5 * natural_agreement(item) + 1.5", "pd.concat(parts, ignore_index=True)", "outside 0..100"),
    "not-a-number": ("torch.full_like(item.d0, float('nan'))", "pd.concat(parts, ignore_index=True)", "outside 0..100"),
    "nothing": ("natural_agreement(item)", "pd.DataFrame()", "returned no per-triplet rows"),
    "no-agreement": (
        "natural_agreement(item)",
        "pd.concat(parts, ignore_index=True).drop(columns=['agreement'])",
        "its rows have no 'agreement' column",
    ),
}


@pytest.fixture
def odd_plugin(tmp_path: Path, request: pytest.FixtureRequest):
    name = request.param
    agreement, result, _ = CASES[name]
    path = tmp_path / f"odd_{name.replace('-', '_')}.py"
    path.write_text(PLUGIN.format(name=name, agreement=agreement, result=result))
    yield name, path
    if name in EVALUATIONS.own():
        EVALUATIONS.remove(name)


@pytest.mark.parametrize("odd_plugin", sorted(CASES), indirect=True)
def test_a_plugin_score_out_of_range_nan_or_empty_is_one_line(capsys, odd_plugin, tmp_path: Path) -> None:
    name, path = odd_plugin
    out = tmp_path / "run"
    code = main(
        [
            "--plugin",
            str(path),
            "--metrics",
            "pixel-l2",
            "--n",
            "4",
            "--evaluations",
            f"natural,{name}",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    lines = [
        line for line in err.replace("\r", "\n").splitlines() if line.strip() and "triplet/s" not in line
    ]  # progress bars aside
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1, lines
    assert f"evaluation {name!r} on metric 'pixel-l2'" in err and CASES[name][2] in err, err
    assert not (out / "scores.csv").exists() or name not in (out / "scores.csv").read_text()


def _edited_and_resealed(out: Path) -> Path:
    """The record's score raised by 10 and its checksum recomputed (a plain sha256 cannot tell)."""
    json_path = next((out / "records").glob("*.json"))
    record = json.loads(json_path.read_text())
    record["scores"][0]["score"] = min(100.0, record["scores"][0]["score"] + 10.0)
    record.pop("checksum")
    json_path.write_text(json.dumps(seal(record), indent=2, sort_keys=True) + "\n")
    return json_path


def test_an_edited_and_resealed_score_is_refused_by_a_rerun_and_by_report(
    capsys, night_tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = ["--metrics", "pixel-l2", "--dataset", f"night:{night_tree}", "--evaluations", "natural", "--out", str(out)]
    assert main(argv) == 0
    honest = pd.read_csv(out / "scores.csv")["score"].tolist()
    json_path = _edited_and_resealed(out)
    capsys.readouterr()
    assert main(["report", str(out)]) in (0, 2)
    err = capsys.readouterr().err
    assert err.count(json_path.name) == 1 and "not what its rows give" in err and "Traceback" not in err, err
    capsys.readouterr()
    assert main(argv) == 0
    out_text, err = capsys.readouterr()
    assert "computed all 1 unit(s)" in out_text
    assert err.count("invalid record") == 1 and "not what its rows give" in err, err
    assert pd.read_csv(out / "scores.csv")["score"].tolist() == honest


def test_the_check_itself() -> None:
    rows = pd.DataFrame(
        {
            "evaluation": "natural",
            "norm": None,
            "eps": float("nan"),
            "group": ["a", "a", "b", "b"],
            "agreement": [1.0, 0.0, 1.0, 1.0],
        }
    )
    good = [
        {"split": "a", "evaluation": "natural", "norm": None, "eps": None, "score": 50.0, "n": 2},
        {"split": "b", "evaluation": "natural", "norm": None, "eps": None, "score": 100.0, "n": 2},
        {"split": "test", "evaluation": "natural", "norm": None, "eps": None, "score": 75.0, "n": 4},
    ]
    assert score_problem(good, rows, "test", "clean", True) is None
    assert "not what its rows give" in score_problem(
        [*good[:2], {**good[2], "score": 76.0}], rows, "test", "clean", True
    )
    assert "not what its rows give" in score_problem([*good[:2], {**good[2], "n": 5}], rows, "test", "clean", True)
    assert "has no score for" in score_problem(good[:2], rows, "test", "clean", True)
    assert "no rows behind it" in score_problem([*good, {**good[0], "split": "c"}], rows, "test", "clean", True)
    assert "from 0 to 100" in score_problem([{**good[0], "score": 150.0}], rows, "test", "clean", True)
    assert "but does not apply" in score_problem(good, rows, "test", "clean", False)
    assert score_problem([], rows, "test", "diagnostic", True) is None
