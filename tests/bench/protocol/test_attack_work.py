"""benchmarks/attack_work.py measures the attacked fractions from a run's triplets.csv; the dry run scales attacks by them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import lipsim_bench.protocol.attack_work as attack_work
from lipsim_bench.attacks.base import ThreatModel
from lipsim_bench.cli import main
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import get_evaluation
from lipsim_bench.evaluations.options import build_options
from lipsim_bench.protocol.attack_work import LABEL, load_attack_work, work_mode
from lipsim_bench.protocol.cost import evaluation_flops, seconds
from lipsim_bench.protocol.estimate import Estimator

SCRIPT = Path(__file__).parents[3] / "benchmarks" / "attack_work.py"
#: (metric, eps): counts of correct triplets attacked, carried, proven; plus 5 incorrect ones and clean rows.
COUNTS = {
    ("convsim-tiny", 0.5): (10, 0, 0),  # the smallest radius: everything attacked
    ("convsim-tiny", 1.0): (6, 4, 0),
    ("pixel-l2", 0.5): (7, 0, 3),
    ("pixel-l2", 1.0): (5, 3, 2),
}


def synthetic_run(folder: Path) -> Path:
    rows = []
    for (metric, eps), (attacked, carried, proven) in COUNTS.items():
        flags = (
            [(True, "attacked")] * attacked
            + [(True, "carried")] * carried
            + [(True, "proven")] * proven
            + [(False, None)] * 5
        )
        for i, (correct, which) in enumerate(flags):
            rows.append(
                {
                    "metric": metric,
                    "dataset": "sample",
                    "split": "test",
                    "evaluation": "apgd",
                    "kind": "attack",
                    "norm": "l2",
                    "eps": eps,
                    "id": i,
                    "correct": correct,
                    "attacked": which == "attacked",
                    "carried": which == "carried",
                    "proven": which == "proven",
                    "flipped": which == "carried",
                }
            )
            rows.append(
                {
                    "metric": metric,
                    "dataset": "sample",
                    "split": "test",
                    "evaluation": "natural",
                    "kind": "clean",
                    "norm": None,
                    "eps": None,
                    "id": i,
                    "correct": correct,
                }
            )
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "triplets.csv", index=False)
    return folder


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def work_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("work")
    out = tmp / "attack_work.json"
    result = run_script(str(synthetic_run(tmp / "run")), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def apgd(**values: object):
    cls = get_evaluation("apgd")
    return cls(build_options(cls.Options, "apgd", {"steps": 10, **values}))


def test_the_script_records_fractions_per_metric_and_class(work_file: Path) -> None:
    data = json.loads(work_file.read_text())
    assert data["classes"]["certifiable"]["metrics"] == ["pixel-l2"] and data["classes"]["uncertifiable"][
        "metrics"
    ] == ["convsim-tiny"]
    assert data["source"]["command"].startswith("python benchmarks/attack_work.py ") and "commit" in data["source"]
    pixel = {p["eps"]: p for p in data["per_metric"]["pixel-l2"]["norms"]["l2"]}
    assert (pixel[1.0]["correct"], pixel[1.0]["attacked"], pixel[1.0]["carried"], pixel[1.0]["proven"]) == (10, 5, 3, 2)
    work = load_attack_work(work_file)
    assert work is not None
    assert work.fraction("certifiable", "l2", 1.0, "carry_and_skip") == pytest.approx(0.5)  # attacked / correct
    assert work.fraction("certifiable", "l2", 1.0, "carry") == pytest.approx(0.7)  # proven ones attacked too
    assert work.fraction("certifiable", "l2", 1.0, "skip_proven") == pytest.approx(0.8)  # carried ones attacked too
    assert work.fraction("uncertifiable", "l2", 1.0, "skip_proven") == pytest.approx(1.0)  # nothing to prove


def test_fractions_interpolate_in_eps_and_hold_beyond_the_measured_radii(work_file: Path) -> None:
    work = load_attack_work(work_file)
    assert work is not None
    assert work.fraction("uncertifiable", "l2", 0.75, "carry_and_skip") == pytest.approx(0.8)
    assert work.fraction("uncertifiable", "l2", 0.1, "carry_and_skip") == pytest.approx(1.0)  # below: the first
    assert work.fraction("uncertifiable", "l2", 3.0, "carry_and_skip") == pytest.approx(0.6)  # beyond: the last
    assert work.fraction("uncertifiable", "linf", 4 / 255, "carry_and_skip") is None  # not measured


def test_the_options_choose_the_fraction() -> None:
    assert work_mode(apgd().options, smallest_radius=False) == "carry_and_skip"
    assert work_mode(apgd().options, smallest_radius=True) == "skip_proven"  # no smaller ball to carry from
    assert work_mode(apgd(skip_proven=False).options, smallest_radius=False) == "carry"
    assert work_mode(apgd(carry=False).options, smallest_radius=False) == "skip_proven"
    assert work_mode(apgd(carry=False, skip_proven=False).options, smallest_radius=False) is None
    assert work_mode(apgd(skip_proven=False).options, smallest_radius=True) is None


def test_attack_units_are_scaled_by_the_measured_fraction(work_file: Path) -> None:
    threats = (ThreatModel("l2", 0.5), ThreatModel("l2", 1.0), ThreatModel("l2", 2.0))
    estimator = Estimator(threats, work=load_attack_work(work_file))
    at_1 = estimator.estimate("convsim-tiny", apgd(), threats[1], 100)
    assert at_1.attacked == pytest.approx(0.6)
    assert at_1.seconds == pytest.approx(
        seconds(evaluation_flops("convsim-tiny", apgd(), 100, threats[1], attacked=0.6))
    )
    assert at_1.seconds < seconds(evaluation_flops("convsim-tiny", apgd(), 100, threats[1]))
    assert estimator.estimate("convsim-tiny", apgd(), threats[0], 100).attacked == pytest.approx(1.0)
    assert estimator.estimate("lipsim-tiny", apgd(), threats[1], 100).attacked == pytest.approx(
        0.5
    )  # certifiable class
    assert estimator.estimate("lipsim-tiny", apgd(carry=False, skip_proven=False), threats[1], 100).attacked is None
    assert estimator.scaled and not estimator.unscaled
    linf = estimator.estimate("convsim-tiny", apgd(), ThreatModel("linf", 4 / 255), 100)
    assert linf.attacked is None and any("no linf fractions" in why for why in estimator.unscaled)
    missing = Estimator(threats, work=None)
    assert missing.estimate("convsim-tiny", apgd(), threats[1], 100).attacked is None
    assert missing.unscaled == {"bench/protocol/attack_work.json is missing"}


def test_dry_run_labels_the_scaled_estimate(
    capsys, work_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attack_work, "ATTACK_WORK", work_file)
    monkeypatch.setenv("LIPSIM_BENCH_DEVICE_PROFILE", "none")
    argv = ["--metrics", "convsim-tiny", "--n", "3", "--eps", "0.5,1", "--steps", "2", "--dry-run"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert LABEL in out and "(60% of correct triplets attacked)" in out
    monkeypatch.setattr(attack_work, "ATTACK_WORK", tmp_path / "absent.json")
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert (
        LABEL not in out
        and "attacks counted on every triplet (an upper bound): bench/protocol/attack_work.json is missing" in out
    )


def test_a_malformed_file_is_one_line_naming_it_and_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "attack_work.json"
    bad.write_text(
        json.dumps({"format": 1, "classes": {"certifiable": {"norms": {"l2": [{"eps": 1.0, "carry_and_skip": 1.5}]}}}})
    )
    with pytest.raises(BenchError, match="not a fraction in") as caught:
        load_attack_work(bad)
    assert str(bad) in str(caught.value) and "benchmarks/attack_work.py RUN_FOLDER" in str(caught.value)


def test_the_script_refuses_a_run_without_the_work_columns(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    pd.DataFrame([{"metric": "convsim-tiny", "kind": "attack", "norm": "l2", "eps": 1.0, "correct": True}]).to_csv(
        folder / "triplets.csv", index=False
    )
    result = run_script(str(folder), "--out", str(tmp_path / "w.json"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "lacks the columns attacked, carried, proven" in result.stderr and not (tmp_path / "w.json").exists()


def test_only_the_projects_own_proofs_count_as_skipping_work() -> None:
    """A plugin's declared bound is attacked everywhere, so the dry run must not scale its attack work down."""
    from lipsim_bench.metrics import register_metric, unregister_metric
    from lipsim_bench.metrics.pixel import PixelL2

    class DeclaredPixel(PixelL2):  # a subclass may change embed: its bound is declared, not proven
        lipschitz = 1.0

    register_metric("declared-pixel", description="test")(DeclaredPixel)
    try:
        assert attack_work.metric_class("declared-pixel") == "uncertifiable"
        assert attack_work.metric_class("pixel-l2") == "certifiable"
        assert attack_work.metric_class("lipsim-tiny") == "certifiable"
        assert attack_work.metric_class("convsim-tiny") == "uncertifiable"
    finally:
        unregister_metric("declared-pixel")


# -- early stopping: the share of its budget an attacked triplet takes (format 2, ``steps``) -------------------

#: (metric, eps): attacked, fooled and passes of an apgd unit with budget 11 (10 steps + the start).
PASSES = {("convsim-tiny", 0.5): (10, 4, 6 * 11 + 4 * 3), ("convsim-tiny", 1.0): (6, 3, 3 * 11 + 3 * 2)}


@pytest.fixture(scope="module")
def steps_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("steps")
    run = synthetic_run(tmp / "run")
    units = [
        {
            "metric": metric,
            "evaluation": "apgd",
            "norm": "l2",
            "eps": eps,
            "budget": 11,
            "gradients": True,
            "attacked": attacked,
            "fooled": fooled,
            "passes": passes,
            "forwards": 0,
        }
        for (metric, eps), (attacked, fooled, passes) in PASSES.items()
    ]
    (run / "attack_passes.json").write_text(json.dumps({"format": 1, "units": units}))
    out = tmp / "attack_work.json"
    result = run_script(str(run), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_the_script_records_the_share_of_the_budget_taken(steps_file: Path) -> None:
    points = json.loads(steps_file.read_text())["steps"]["apgd"]["uncertifiable"]["l2"]
    assert [(p["eps"], p["share"], p["robust"], p["budget"]) for p in points] == [
        (0.5, round(78 / 110, 4), 0.6, 11),
        (1.0, round(39 / 66, 4), 0.5, 11),
    ]
    work = load_attack_work(steps_file)
    assert work is not None and work.step_share("apgd", "certifiable", "l2", 1.0, 11) is None  # not measured
    assert work.step_share("apgd", "uncertifiable", "l2", 0.5, 11) == pytest.approx(78 / 110, abs=1e-4)
    # a larger budget: the fooled ones need the same passes, the robust ones all of it
    assert work.step_share("apgd", "uncertifiable", "l2", 0.5, 101) == pytest.approx(
        0.6 + (78 / 110 - 0.6) * 11 / 101, abs=1e-4
    )
    assert work.step_share("apgd", "uncertifiable", "l2", 0.5, 2) == pytest.approx(1.0)  # at most the whole budget


def test_attack_units_count_the_steps_early_stopping_leaves(steps_file: Path) -> None:
    threats = (ThreatModel("l2", 0.5), ThreatModel("l2", 1.0))
    estimator = Estimator(threats, work=load_attack_work(steps_file))
    unit = estimator.estimate("convsim-tiny", apgd(), threats[1], 100)
    assert unit.attacked == pytest.approx(0.6) and unit.steps == pytest.approx(39 / 66, abs=1e-4)
    assert unit.seconds == pytest.approx(
        seconds(evaluation_flops("convsim-tiny", apgd(), 100, threats[1], attacked=0.6 * unit.steps))
    )
    assert estimator.early_stopped == {"apgd (l2)"} and not estimator.full_budget
    every_step = estimator.estimate("convsim-tiny", apgd(early_stop=False), threats[1], 100)
    assert every_step.steps is None and estimator.full_budget == {"apgd (l2)"}


def test_every_attack_evaluation_is_counted_by_its_own_passes() -> None:
    """Square takes no gradients: its budget is queries (forward passes), not steps of forward+backward."""
    from lipsim_bench.protocol.cost import pass_counts

    square_cls = get_evaluation("square")
    square = square_cls(build_options(square_cls.Options, "square", {"n_queries": 50, "restarts": 2}))
    assert square.budget() == 102 and apgd().budget() == 11
    assert pass_counts(square, 10, ThreatModel("l2", 1.0)) == (10 * (4 + 102), 0)
    assert pass_counts(apgd(), 10, ThreatModel("l2", 1.0)) == (10 * 4, 10 * 11)


def test_dry_run_labels_the_steps_taken(
    capsys, steps_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attack_work, "ATTACK_WORK", steps_file)
    monkeypatch.setenv("LIPSIM_BENCH_DEVICE_PROFILE", "none")
    argv = ["--metrics", "convsim-tiny", "--n", "3", "--eps", "0.5,1", "--steps", "10", "--dry-run"]
    assert main([*argv, "--evaluations", "natural,apgd,square", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "(60% of correct triplets attacked; 59% of their steps)" in out
    assert "early stopping counted for apgd" in out and "not measured) for square" in out


def test_other_runs_passes_add_attacks_and_never_count_a_unit_twice(steps_file: Path, tmp_path: Path) -> None:
    """A cascaded attack (after=apgd) is counted per triplet APGD attacked: the dry run scales it by APGD's fractions."""
    run = steps_file.parent / "run"
    unit = {"metric": "convsim-tiny", "norm": "l2", "eps": 0.5, "forwards": 0}
    other = tmp_path / "ensemble_passes.json"
    # Square on the 2 triplets APGD left of its 10: one fooled after 50 queries, one robust (101); + the final forward
    square = {**unit, "evaluation": "square", "options": {"after": "apgd"}, "budget": 101, "gradients": False}
    square.update(attacked=2, fooled=1, passes=0, forwards=101 + 50 + 2)
    again = {**unit, "evaluation": "apgd", "budget": 11, "gradients": True, "attacked": 10, "fooled": 8, "passes": 10}
    other.write_text(json.dumps({"format": 1, "units": [square, again]}))  # again: the same unit, ignored
    out = tmp_path / "attack_work.json"
    result = run_script(str(run), "--out", str(out), "--passes", str(other))
    assert result.returncode == 0, result.stderr
    steps = json.loads(out.read_text())["steps"]
    assert steps["square"]["uncertifiable"]["l2"] == [
        {"eps": 0.5, "share": round(151 / 1010, 4), "robust": 0.1, "budget": 101, "metrics": 1}
    ]
    assert steps["apgd"] == json.loads(steps_file.read_text())["steps"]["apgd"]
