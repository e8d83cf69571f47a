"""Transfer: each metric scored on the adversarial examples the attack stored for every metric of the run,
read back from records/ (nothing attacked again)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from safetensors.torch import load_file

import bench
from lipsim_bench.datasets import create_dataset
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import get_evaluation
from lipsim_bench.report.transfer import transfer_matrix
from lipsim_bench.run.plan import DataIdentity, plan_units
from lipsim_bench.run.spec import RunSpec, resolve

TOYS = str(Path(__file__).with_name("transfer_toys.py"))
METRICS = ["pixel-l2", "convsim-tiny", "test-tr-constant"]
EPS = [0.5, 1.0, 2.0]


def _kwargs(out: Path, **extra: Any) -> dict[str, Any]:
    return dict(
        metric=METRICS,
        n=8,
        batch_size=4,
        evaluations=["natural", "apgd", "transfer"],
        eps=EPS,
        apgd={"steps": 5},
        plugins=[TOYS],
        out=out,
        **extra,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bench.Evaluated]:
    out = tmp_path_factory.mktemp("transfer") / "run"
    return out, bench.evaluate(**_kwargs(out))


def _cell(matrix: pd.DataFrame, source: str, metric: str, eps: float) -> float:
    found = matrix[(matrix["source"] == source) & (matrix["metric"] == metric) & (matrix["eps"] == eps)]
    assert len(found) == 1, (source, metric, eps)
    return float(found["score"].iloc[0])


def _score(scores: pd.DataFrame, metric: str, evaluation: str, eps: float | None) -> float:
    rows = scores[(scores["metric"] == metric) & (scores["evaluation"] == evaluation)]
    rows = rows[rows["eps"].isna()] if eps is None else rows[rows["eps"] == eps]
    assert len(rows) == 1, (metric, evaluation, eps)
    return float(rows["score"].iloc[0])


def test_the_diagonal_is_each_metric_s_own_attack_score(run: tuple[Path, bench.Evaluated]) -> None:
    out, result = run
    matrix = transfer_matrix(result.diagnostics["transfer_triplets.csv"])
    assert set(matrix["source"]) == set(METRICS) and set(matrix["metric"]) == set(METRICS)
    for metric in METRICS:
        for eps in EPS:
            assert _cell(matrix, metric, metric, eps) == pytest.approx(
                _score(result.scores, metric, "apgd", eps), abs=1e-9
            )
    triplets = result.triplets[result.triplets["evaluation"] == "apgd"]
    # the test means something: flips were carried from smaller radii (their examples are in those units' files)
    # and the attack moved a score, so clean inputs in place of the examples would give other numbers
    assert triplets["carried"].astype(str).str.lower().eq("true").any()
    assert _score(result.scores, "pixel-l2", "apgd", 2.0) < _score(result.scores, "pixel-l2", "natural", None)
    assert (out / "transfer.csv").is_file() and (out / "transfer.md").is_file() and (out / "transfer.png").is_file()


def test_a_source_that_attacked_nothing_leaves_every_metric_on_its_clean_score(
    run: tuple[Path, bench.Evaluated],
) -> None:
    out, result = run
    stored = [load_file(p) for p in (out / "records").glob("test-tr-constant__apgd__*.adversarial.safetensors")]
    assert len(stored) == len(EPS) and all(len(t["position"]) == 0 for t in stored)  # every triplet a tie
    matrix = transfer_matrix(result.diagnostics["transfer_triplets.csv"])
    for metric in METRICS:
        for eps in EPS:
            assert _cell(matrix, "test-tr-constant", metric, eps) == _score(result.scores, metric, "natural", None)


def test_a_rerun_reuses_every_unit(run: tuple[Path, bench.Evaluated]) -> None:
    out, first = run
    again = bench.evaluate(**_kwargs(out))
    assert len(again.reused_times) == len(again.records) == len(METRICS) * (2 + len(EPS))
    log = (out / "run.log").read_text().splitlines()
    last = log[max(i for i, line in enumerate(log) if "start:" in line) :]
    assert sum("reused:" in line for line in last) == len(again.records)
    assert f"done: 0 unit(s) computed, {len(again.records)} reused" in last[-1]
    pd.testing.assert_frame_equal(
        first.diagnostics["transfer_triplets.csv"], again.diagnostics["transfer_triplets.csv"]
    )


def test_a_missing_examples_file_recomputes_its_unit(run: tuple[Path, bench.Evaluated]) -> None:
    out, first = run
    victim = sorted((out / "records").glob("pixel-l2__apgd__*.adversarial.safetensors"))[0]
    victim.unlink()
    again = bench.evaluate(**_kwargs(out))
    assert victim.is_file()  # the unit was computed again and kept its examples
    assert len(again.records) - len(again.reused_times) == 1
    pd.testing.assert_frame_equal(first.scores, again.scores)


def test_the_key_holds_every_source_unit(night_tree: Path) -> None:
    def keys(steps: int) -> dict[tuple, str]:
        spec = RunSpec(
            metrics=["pixel-l2", "convsim-tiny"],
            dataset=f"night:{night_tree}",
            evaluations=["apgd", "transfer"],
            threats=[("l2", [0.5, 1.0])],
            options={"apgd": {"steps": steps}},
        )
        dataset = create_dataset(spec.dataset, spec.split)
        data = DataIdentity(dataset.name, dataset.split, None, dataset.fingerprint())
        units = plan_units(spec, resolve(spec, dataset.name), data)
        return {(u.metric, u.evaluation.name, u.threat): u.unit for u in units}

    before, after = keys(5), keys(6)
    transfer = before[("pixel-l2", "transfer", None)]
    attacks = [u.key() for (m, e, _), u in before.items() if e == "apgd"]
    assert sorted(transfer.settings["depends_on"]) == sorted(attacks)  # every metric's attack, every radius
    assert after[("pixel-l2", "transfer", None)].key() != transfer.key()  # another source: recomputed


def test_without_a_run_folder_it_is_one_line_before_any_work() -> None:
    with pytest.raises(BenchError, match="needs a run folder: give bench.evaluate out=FOLDER"):
        bench.evaluate(metric="pixel-l2", n=2, evaluations=["apgd", "transfer"], apgd={"steps": 1})


def test_without_its_attack_it_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"attack 'apgd', which this run does not compute; add it to --evaluations"):
        bench.evaluate(metric="pixel-l2", n=2, evaluations=["natural", "transfer"], out=tmp_path / "run")


def test_a_run_perturbing_the_stacked_triplet_gives_the_diagonal_back(tmp_path: Path) -> None:
    result = bench.evaluate(
        metric=["pixel-l2", "convsim-tiny"],
        n=6,
        evaluations=["apgd", "transfer"],
        eps=[1.0, 2.0],
        apgd={"steps": 3},
        perturb="all",
        out=tmp_path / "run",
    )
    matrix = transfer_matrix(result.diagnostics["transfer_triplets.csv"])
    assert result.diagnostics["transfer_triplets.csv"]["perturbed"].astype(bool).any()
    for metric in ("pixel-l2", "convsim-tiny"):
        for eps in (1.0, 2.0):
            assert _cell(matrix, metric, metric, eps) == pytest.approx(
                _score(result.scores, metric, "apgd", eps), abs=1e-9
            )


def test_an_attack_run_after_others_is_refused_in_one_line(tmp_path: Path) -> None:
    if "after" not in {f.name for f in dataclasses.fields(get_evaluation("apgd").Options)}:
        pytest.skip("attacks of this tree have no cascade option (apgd.after)")
    with pytest.raises(BenchError, match=r"transfer.attack 'apgd' runs after other attacks"):
        bench.evaluate(
            metric="pixel-l2",
            n=2,
            evaluations=["square", "apgd", "transfer"],
            apgd={"steps": 1, "after": "square"},
            out=tmp_path / "run",
        )
