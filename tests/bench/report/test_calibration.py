"""The published cells' file, and the LipSim paper's certified accuracy computed beside the soft score."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lipsim_bench.errors import BenchError
from lipsim_bench.metrics import list_metrics
from lipsim_bench.report.calibration import ALIASES, load_published
from lipsim_bench.report.paper_certified import paper_certified


def test_shipped_cells_name_registry_metrics_and_declared_sources() -> None:
    published = load_published()
    cells = published.cells
    assert len(cells) > 40 and set(cells["source"]) <= set(published.sources)
    names = set(list_metrics())
    assert set(cells["metric"]) <= names, set(cells["metric"]) - names
    assert set(ALIASES) <= names and set(ALIASES.values()) <= names
    # the LipSim table: five metrics, natural and l2 APGD at 0.5, 1, 2, 3
    lipsim = cells[cells["source"] == "lipsim2024"]
    assert len(lipsim) == 25 and sorted(lipsim["eps"].dropna().unique()) == [0.5, 1.0, 2.0, 3.0]
    row = lipsim[(lipsim["metric"] == "lipsim") & (lipsim["eps"] == 2.0)]
    assert row["score"].tolist() == [72.20]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "published.json"
    path.write_text(json.dumps(data))
    return path


def test_a_malformed_file_is_one_line_naming_the_cell(tmp_path: Path) -> None:
    data = json.loads(Path(load_published().path).read_text())
    data["cells"][3]["score"] = 150.0
    with pytest.raises(BenchError, match=r"cells/3/score: 150.0 is greater than the maximum of 100"):
        load_published(_write(tmp_path, data))
    data["cells"][3]["score"] = 50.0
    data["cells"][3]["source"] = "nobody2030"
    with pytest.raises(BenchError, match="undeclared source"):
        load_published(_write(tmp_path, data))
    with pytest.raises(BenchError, match="no such file"):
        load_published(tmp_path / "missing.json")


def test_nan_a_radius_without_its_norm_and_a_repeated_cell_are_refused(tmp_path: Path) -> None:
    """Each of these matched nothing, or matched twice with two numbers, without a word."""
    shipped = json.loads(Path(load_published().path).read_text())
    natural = next(c for c in shipped["cells"] if c["evaluation"] == "natural")
    attack = next(c for c in shipped["cells"] if c["evaluation"] == "apgd")
    nan = _write(tmp_path, {**shipped, "cells": [{**natural, "score": float("nan")}]})
    with pytest.raises(BenchError, match="NaN is not a number"):
        load_published(nan)
    with pytest.raises(BenchError, match=r"cells/0: norm 'l2' with eps None; give both"):
        load_published(_write(tmp_path, {**shipped, "cells": [{**attack, "eps": None}]}))
    with pytest.raises(BenchError, match=r"cells/1 repeats cells/0"):
        load_published(_write(tmp_path, {**shipped, "cells": [natural, {**natural, "score": 12.0}]}))


def _rows(p: list[float], correct: list[bool], radius: list[float], group: list[str], eps: float = 0.1) -> pd.DataFrame:
    n = len(p)
    return pd.DataFrame(
        {
            "metric": "m",
            "dataset": "night",
            "split": "test",
            "evaluation": "certified",
            "kind": "certificate",
            "eps": eps,
            "group": group,
            "p": p,
            "correct": correct,
            "radius": radius,
        },
        index=range(n),
    )


def test_paper_certified_drops_half_votes_rounds_targets_and_weights_halves_by_size() -> None:
    # half A: 4 triplets, one p = 0.5 (dropped), of the 3 kept: 2 correct and certified, 1 correct but inside eps
    # half B: 2 triplets, 1 correct and certified, 1 wrong
    rows = _rows(
        p=[2 / 3, 1.0, 5 / 6, 0.5, 1 / 3, 0.0],
        correct=[True, True, True, False, True, False],
        radius=[0.5, 0.3, 0.05, 0.9, 0.4, 0.8],
        group=["A", "A", "A", "A", "B", "B"],
    )
    got = paper_certified(rows).set_index("split")
    assert got.loc["A", "paper_score"] == pytest.approx(100 * 2 / 3) and got.loc["A", "dropped"] == 1
    assert got.loc["B", "paper_score"] == pytest.approx(50.0) and got.loc["B", "paper_n"] == 2
    # the headline: halves weighted by their sizes before dropping (4 and 2), as the official code does
    assert got.loc["test", "paper_score"] == pytest.approx((4 * 100 * 2 / 3 + 2 * 50.0) / 6)
    assert got.loc["test", "paper_n"] == 5 and got.loc["test", "dropped"] == 1


def test_one_group_gets_one_row_and_the_soft_score_is_on_another_scale() -> None:
    rows = _rows(p=[2 / 3, 5 / 6, 0.5], correct=[True, True, False], radius=[1.0, 1.0, 1.0], group=["g"] * 3)
    got = paper_certified(rows)
    assert got["split"].tolist() == ["test"] and got["paper_score"].tolist() == [100.0]
    soft = (2 / 3 + 5 / 6 + 0.5) / 3 * 100  # p or 1 - p inside the radius; the 0.5 triplet counts a half
    assert soft == pytest.approx(66.67, abs=0.01)  # the two definitions: 66.67 soft, 100 the paper's


def test_rows_without_certificates_give_an_empty_frame() -> None:
    assert paper_certified(pd.DataFrame()).empty
    assert paper_certified(_rows([1.0], [True], [1.0], ["g"]).assign(kind="clean")).empty
