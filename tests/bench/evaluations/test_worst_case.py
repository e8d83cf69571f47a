"""``worst-case``: robust only if every attack of the run failed; never above any single attack; keyed by its
attacks; AutoAttack's masking check."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lipsim_bench.cli import main
from lipsim_bench.evaluations.worst_case import masking_notes

RUN = ["--metrics", "convsim-tiny", "--n", "24", "--set", "apgd.steps=4"]


def _run(out: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, int]:
    argv = [*RUN, "--out", str(out), *extra]
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    found = re.findall(r"done: (\d+) unit\(s\) computed, (\d+) reused", (out / "run.log").read_text())
    return int(found[-1][0]), int(found[-1][1])


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("worst") / "run"
    argv = [*RUN, "--out", str(out), "--evaluations", "natural,apgd,pgd,worst-case", "--set", "pgd.steps=2"]
    assert main(argv) == 0
    return out


def test_each_triplet_takes_the_lowest_agreement_any_attack_left(ensemble: Path) -> None:
    rows = pd.read_csv(ensemble / "triplets.csv", dtype={"id": str})
    attacks = rows[rows["kind"] == "attack"]
    by_eval = {name: part.set_index(["eps", "id"])["agreement"] for name, part in attacks.groupby("evaluation")}
    expected = np.minimum(by_eval["apgd"], by_eval["pgd"])
    worst = by_eval["worst-case"].reindex(expected.index)
    np.testing.assert_array_equal(worst.to_numpy(), expected.to_numpy())


def test_the_worst_case_is_never_above_any_single_attack(ensemble: Path) -> None:
    scores = pd.read_csv(ensemble / "scores.csv")
    table = scores[scores["kind"] == "attack"].pivot_table(index="eps", columns="evaluation", values="score")
    assert (table["worst-case"] <= table[["apgd", "pgd"]].min(axis=1) + 1e-9).all()
    # and it is a real minimum: at some radius the two attacks differ or agree, the worst case equals the lower
    assert np.allclose(table["worst-case"], table[["apgd", "pgd"]].min(axis=1))


def test_the_worst_case_names_its_attacks_in_the_footer(ensemble: Path) -> None:
    text = (ensemble / "scores.md").read_text()
    found = re.search(
        r"convsim-tiny worst-case l2 ([0-9./ ]+): over apgd, pgd, ([0-9/ ]+) of ([0-9/ ]+) correct triplets flipped, "
        r"first by apgd ([0-9/ ]+), pgd ([0-9/ ]+)",
        text,
    )
    assert found, text
    radii, flipped, _, by_apgd, by_pgd = ([float(v) for v in g.split(" / ")] for g in found.groups())
    assert radii == [0.25, 0.5, 1.0, 2.0]  # the four radii's lines said once
    assert all(f == a + p for f, a, p in zip(flipped, by_apgd, by_pgd, strict=True)) and flipped[-1] > 0


def test_its_key_holds_its_attacks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    ensemble = ["--evaluations", "natural,apgd,pgd,worst-case", "--eps", "0.5"]
    assert _run(out, capsys, *ensemble, "--set", "pgd.steps=2") == (4, 0)
    assert _run(out, capsys, *ensemble, "--set", "pgd.steps=2") == (0, 4)
    # another pgd: pgd and the worst case recomputed, natural and apgd reused
    assert _run(out, capsys, *ensemble, "--set", "pgd.steps=3") == (2, 2)


def test_a_run_without_attacks_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = [
        "--metrics",
        "convsim-tiny",
        "--n",
        "4",
        "--out",
        str(tmp_path / "run"),
        "--evaluations",
        "natural,worst-case",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "worst-case needs at least one attack" in err[0]
    assert not (tmp_path / "run" / "records").exists() or not list((tmp_path / "run" / "records").glob("*.json"))


def _rows(black: list[bool], white: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"flipped:square": black, "flipped:apgd": white})


def test_a_black_box_attack_beating_the_gradient_attacks_is_called_masking() -> None:
    # square flips 8 triplets apgd left robust, apgd none that square missed
    lines = masking_notes(
        "m worst-case l2 1", _rows([True] * 8 + [False] * 92, [False] * 100), ["apgd", "square"], ("square",)
    )
    assert len(lines) == 1 and "a sign of gradient masking" in lines[0] and "flipped 8 triplets" in lines[0]


def test_a_black_box_attack_within_noise_is_said_so() -> None:
    black = [True] * 2 + [False] * 98
    white = [False] * 2 + [True] * 3 + [False] * 95
    lines = masking_notes("m worst-case l2 1", _rows(black, white), ["apgd", "square"], ("square",))
    assert len(lines) == 1 and "within noise" in lines[0]
    # nothing to say when square found nothing new, or when no gradient-free attack ran
    assert masking_notes("m", _rows([False] * 10, [True] * 10), ["apgd", "square"], ("square",)) == []
    assert masking_notes("m", _rows([True] * 10, [False] * 10), ["apgd", "square"], ()) == []


def test_another_set_of_attacks_is_another_column_never_a_replacement(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    base = ["--metrics", "convsim-tiny", "--n", "6", "--eps", "0.5", "--set", "apgd.steps=1", "--out", str(out)]
    assert main([*base, "--evaluations", "natural,apgd,pgd,worst-case", "--set", "pgd.steps=6"]) == 0
    assert main([*base, "--evaluations", "natural,apgd,worst-case"]) == 0
    capsys.readouterr()
    table = (out / "scores.md").read_text()
    # over apgd and pgd, and over apgd alone: both kept, the second in its own column
    assert "| worst-case l2 0.5 |" in table and '| worst-case(over=["apgd"]) l2 0.5 |' in table
