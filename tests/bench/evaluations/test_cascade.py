"""An attack run ``after`` others takes their flips at the same radius as found (AutoAttack's cascade): it never
attacks those triplets again, its score counts them, and its key holds theirs."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from lipsim_bench.cli import main

RUN = ["--metrics", "convsim-tiny", "--n", "24", "--evaluations", "natural,apgd,pgd", "--eps", "0.5,1"]


def _run(out: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, int]:
    assert main([*RUN, "--out", str(out), *extra]) == 0, capsys.readouterr().err
    capsys.readouterr()
    found = re.findall(r"done: (\d+) unit\(s\) computed, (\d+) reused", (out / "run.log").read_text())
    return int(found[-1][0]), int(found[-1][1])


def _rows(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "triplets.csv", dtype={"id": str})


def test_a_cascaded_attack_skips_what_the_first_flipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    _run(out, capsys, "--set", "apgd.steps=5", "--set", "pgd.steps=2", "--set", "pgd.after=apgd")
    rows = _rows(out)
    for eps in (0.5, 1.0):
        apgd = rows[(rows["evaluation"] == "apgd") & (rows["eps"] == eps)].set_index("id")
        pgd = rows[(rows["evaluation"] == "pgd") & (rows["eps"] == eps)].set_index("id").reindex(apgd.index)
        by_apgd = apgd["flipped"].astype(bool)
        assert by_apgd.any()
        # every apgd flip is pgd's too, carried (not attacked), with apgd's adversarial distances
        assert pgd["flipped"].astype(bool)[by_apgd].all()
        assert not pgd["attacked"].astype(bool)[by_apgd].any()
        assert (pgd["d0"][by_apgd] == apgd["d0"][by_apgd]).all()
        assert pgd["agreement"].mean() <= apgd["agreement"].mean()
    assert "flips carried from the smaller radius or apgd" in (out / "scores.md").read_text()


def test_its_key_holds_the_attacks_before_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    cascade = ["--set", "pgd.steps=2", "--set", "pgd.after=apgd"]
    assert _run(out, capsys, "--set", "apgd.steps=3", *cascade) == (5, 0)
    # apgd changes: apgd and the pgd cascaded after it are computed again, natural is reused
    assert _run(out, capsys, "--set", "apgd.steps=4", *cascade) == (4, 1)


def test_after_must_name_another_attack_of_the_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for bad in ("square", "natural", "pgd"):
        assert main([*RUN, "--out", str(tmp_path / bad), "--set", f"pgd.after={bad}"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pgd.after names {bad!r}" in err[0], err


def test_a_narrower_run_of_a_preset_cuts_its_cascade(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--preset", "ensemble", "--evaluations", "natural,apgd,square,worst-case", "--n", "3"]
    argv += ["--set", "apgd.steps=1", "--set", "square.n_queries=2", "--metrics", "convsim-tiny", "--eps", "0.5"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0, capsys.readouterr().err
    rows = _rows(tmp_path / "run")
    settings = pd.read_csv(tmp_path / "run" / "scores.csv").set_index("evaluation")["settings"]
    assert '"after": "apgd"' in settings["square"] and len(rows)


def test_transfer_of_an_evaluation_that_crafts_nothing_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["--metrics", "convsim-tiny", "--n", "3", "--evaluations", "natural,apgd,worst-case,transfer"]
    assert main([*argv, "--set", "transfer.attack=worst-case", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "crafts no adversarial examples" in err[0]
    assert not list((tmp_path / "run").glob("records/*.json"))
