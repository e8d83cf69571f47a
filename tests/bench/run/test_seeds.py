"""``--seeds``: seed-dependent units run once per seed, the others once under the key a ``--seed`` run gives them;
units that read others read those of their own seed; the cells fold into one mean over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lipsim_bench.cli import main
from lipsim_bench.errors import BenchError
from lipsim_bench.protocol.dryrun import dry_run_report
from lipsim_bench.run.plan import DataIdentity, PlannedUnit, plan_units
from lipsim_bench.run.seeds import parse_seeds
from lipsim_bench.run.spec import RunSpec, check_spec, resolve

DATA = DataIdentity("sample", "test", 8, "sha256:fixed")  # planning reads no image: a fixed content id
RUN = dict(  # natural and certified (seed-free), a random attack, a deterministic one, what reads attacks, smoothing
    metrics=["pixel-l2", "convsim-tiny"],
    evaluations=["natural", "certified", "apgd", "fmn", "worst-case", "transfer", "smoothing"],
    threats=[("l2", [0.5, 1.0])],
    save_adversarial=True,
)


def _plan(**changes: object) -> list[PlannedUnit]:
    spec = RunSpec(**{**RUN, **changes})  # type: ignore[arg-type]
    return plan_units(spec, resolve(spec, "sample"), DATA)


def _where(units: list[PlannedUnit]) -> dict[tuple, list[int]]:
    found: dict[tuple, list[int]] = {}
    for u in units:
        found.setdefault((u.metric, u.evaluation.name, u.threat.eps if u.threat else None), []).append(u.seed)
    return found


def test_the_first_seed_plans_exactly_a_seed_run_and_only_random_units_repeat() -> None:
    plain = _plan(seed=5)
    several = _plan(seeds=[5, 1, 2])
    assert [u.unit.key() for u in several[: len(plain)]] == [u.unit.key() for u in plain]  # a --seed 5 run's keys
    assert [u.position for u in several[: len(plain)]] == [u.position for u in plain]
    seeds = _where(several)
    for metric in RUN["metrics"]:
        for once in ("natural", "certified"):
            assert seeds[metric, once, None] == [5]
        assert seeds[metric, "fmn", 0.5] == [5]  # deterministic, read by the worst case of every seed
        assert seeds[metric, "smoothing", None] == [5, 1, 2]
        assert seeds[metric, "transfer", None] == [5, 1, 2]
        for eps in (0.5, 1.0):
            assert seeds[metric, "apgd", eps] == [5, 1, 2]
            assert seeds[metric, "worst-case", eps] == [5, 1, 2]
    assert len({u.unit.key() for u in several}) == len(several)  # no unit twice
    assert not any(u.per_seed for u in plain)


def test_units_that_read_others_read_those_of_their_own_seed() -> None:
    units = _plan(seeds=[0, 3])
    for u in units:
        if u.builds_on is not None:
            assert u.builds_on.settings["seed"] == u.seed  # apgd at 1 carries apgd at 0.5 of its seed
        for ref, read in u.depends:
            expected = 0 if ref.evaluation.name == "fmn" else u.seed
            assert read.settings["seed"] == expected, (u.evaluation.name, ref.evaluation.name)
        if u.per_seed and u.evaluation.name == "apgd":
            assert u.unit.settings["options"]["seed"] == u.seed  # the attack's own seed is the unit's


def test_seeds_are_checked_before_any_work() -> None:
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    for text, says in (("0,x", "'x' is not an integer"), ("1,1", "seed 1 is given twice"), (",", "names no seed")):
        with pytest.raises(BenchError, match=says):
            parse_seeds(text)
    with pytest.raises(BenchError, match="not both"):
        check_spec(RunSpec(metrics=["pixel-l2"], seed=3, seeds=[0, 1]))
    spec = RunSpec(metrics=["pixel-l2"], seeds=[4, 2])
    check_spec(spec)
    assert spec.seed == 4  # the seed-independent units' seed


def test_seed_and_seeds_exclude_each_other_in_one_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["--seed", "1", "--seeds", "0,1", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not allowed with argument" in err and "\n" not in err


def test_the_dry_run_counts_each_seed() -> None:
    spec = RunSpec(metrics=["pixel-l2"], n=8, evaluations=["natural", "apgd"], threats=[("l2", [0.5])], seeds=[0, 1])
    text = dry_run_report(spec)
    assert "seeds 0, 1:" in text
    assert len([line for line in text.splitlines() if "natural [clean]" in line]) == 1
    assert [line.split("[attack]")[1].split()[:2] for line in text.splitlines() if "apgd l2 0.5" in line] == [
        ["seed", "0"],
        ["seed", "1"],
    ]


SMOOTHING = ("smoothing.sigma=2", "smoothing.n0=4", "smoothing.n=12", "smoothing.alpha=0.4", "smoothing.eps=0.25")


def test_a_seeds_run_computes_natural_once_and_folds_random_cells(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    sets = [arg for value in SMOOTHING for arg in ("--set", value)]
    argv = ["--n", "16", "--metrics", "pixel-l2,convsim-tiny", "--evaluations", "natural,apgd,smoothing", *sets]
    argv += ["--eps", "1", "--steps", "2", "--out", str(run)]
    assert main([*argv, "--seeds", "0,1,2"]) == 0
    capsys.readouterr()
    records = [json.loads(p.read_text()) for p in sorted((run / "records").glob("*.json"))]
    by_name: dict[str, list[dict]] = {}
    for record in records:
        by_name.setdefault(record["evaluation"]["name"], []).append(record)
    assert len(by_name["natural"]) == 2  # computed once per metric
    attacks = {r["unit"]["settings"]["seed"]: r for r in by_name["apgd"] if r["unit"]["metric"] == "convsim-tiny"}
    rows = {seed: pd.read_csv(run / "records" / r["triplets_file"]) for seed, r in attacks.items()}
    assert sorted(rows) == [0, 1, 2]
    assert not rows[0]["d0"].equals(rows[1]["d0"])  # another random start: other adversarial examples
    smoothing = [r for r in by_name["smoothing"] if r["unit"]["metric"] == "pixel-l2"]
    smoothing.sort(key=lambda r: r["unit"]["settings"]["seed"])
    assert [r["unit"]["settings"]["seed"] for r in smoothing] == [0, 1, 2]
    assert [r["config"]["seed"] for r in smoothing] == [0, 1, 2]  # each record says its own seed
    per_seed = [[s["score"] for s in r["scores"]] for r in smoothing]
    assert len({tuple(s) for s in per_seed}) > 1  # the noise really differs between seeds
    scores = pd.read_csv(run / "scores.csv")
    assert not scores["evaluation"].str.contains("seed=").any()  # folded, never a column per seed
    pixel = scores[scores["metric"] == "pixel-l2"]
    cells = pixel[pixel["evaluation"].str.startswith("smoothing")].reset_index(drop=True)
    for i, row in cells.iterrows():
        values = [seed_scores[i] for seed_scores in per_seed]
        assert row["score"] == pytest.approx(sum(values) / 3)
        assert row["seed_worst"] == pytest.approx(min(values))
        assert row["seed_sd"] == pytest.approx(pd.Series(values).std())
        assert row["seeds"] == "0,1,2"
        assert row["ci_low"] <= row["score"] <= row["ci_high"]  # the interval of the seed-averaged score
    assert pd.isna(scores.loc[scores["evaluation"] == "natural", "seed_sd"]).all()
    assert "mean over seeds 0, 1, 2" in (run / "scores.md").read_text()
    assert "seeds 0, 1, 2 (random cells: mean over seeds)" in (run / "scores.md").read_text().splitlines()[0]
    assert (run / "seeds.md").read_text().count("| pixel-l2 |") == len(cells) + 1  # and its apgd cell
    # a --seed 0 run of the same request is the seeds run's first seed: every unit reused
    assert main([*argv, "--seed", "0"]) == 0
    assert "reused 6 of 6 unit(s)" in capsys.readouterr().out
