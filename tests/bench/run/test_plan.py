"""Unit keys are complete and resolved: every value that changes a number, the data by content."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from lipsim_bench.datasets import create_dataset
from lipsim_bench.run.plan import DataIdentity, plan_units
from lipsim_bench.run.records import RECORD_FORMAT
from lipsim_bench.run.spec import RunSpec, resolve


def _keys(spec: RunSpec, root: Path | None = None) -> dict[tuple, str]:
    dataset = create_dataset(spec.dataset, spec.split).head(spec.n)
    data = DataIdentity(dataset.name, dataset.split, spec.n, dataset.fingerprint())
    units = plan_units(spec, resolve(spec, dataset.name), data)
    return {(u.metric, u.evaluation.name, u.threat.eps if u.threat else None): u.unit.key() for u in units}


def test_defaults_are_resolved_into_the_key(night_tree: Path) -> None:
    spec = RunSpec(
        metrics=["pixel-l2"], dataset=f"night:{night_tree}", evaluations=["certified", "apgd"], threats=[("l2", [1.0])]
    )
    dataset = create_dataset(spec.dataset)
    data = DataIdentity(dataset.name, dataset.split, None, dataset.fingerprint())
    units = {u.evaluation.name: u.unit for u in plan_units(spec, resolve(spec, dataset.name), data)}
    assert units["certified"].settings["options"] == {"eps": [36 / 255, 72 / 255, 108 / 255]}
    apgd = units["apgd"].settings["options"]
    assert {"loss", "rho", "momentum", "early_stop", "steps", "restarts", "seed"} <= set(apgd)
    assert units["apgd"].settings["batch_size"] == 100 and "batch_size" not in units["certified"].settings
    assert units["apgd"].settings["source"].startswith("src:") and units["apgd"].settings["version"] == 1
    import torch

    assert (
        units["apgd"].settings["code"].startswith("src:")
        and units["apgd"].settings["code"] != units["certified"].settings["code"]
    )
    assert units["apgd"].settings["torch"] == torch.__version__ and units["apgd"].settings["device"] == "cpu"


def test_every_attack_option_changes_the_key(night_tree: Path) -> None:
    base = dict(metrics=["pixel-l2"], dataset=f"night:{night_tree}", evaluations=["apgd"], threats=[("l2", [1.0])])
    reference = _keys(RunSpec(**base))
    for option, value in (("rho", 0.5), ("loss", "margin"), ("momentum", 0.5), ("early_stop", False), ("steps", 7)):
        assert _keys(RunSpec(**base, options={"apgd": {option: value}})) != reference, option
    assert _keys(RunSpec(**base, options={"apgd": {"rho": 0.75}})) == reference  # the default, written out


def test_data_is_keyed_by_content_not_path(night_tree: Path, tmp_path: Path) -> None:
    spec = lambda root: RunSpec(metrics=["pixel-l2"], dataset=f"night:{root}", evaluations=["natural"])  # noqa: E731
    moved = tmp_path / "elsewhere" / "nights"
    shutil.copytree(night_tree, moved)
    assert _keys(spec(night_tree)) == _keys(spec(moved))
    frame = pd.read_csv(moved / "data.csv")
    frame.loc[frame["split"] == "test", ["left_vote", "right_vote"]] = [
        0.1,
        0.9,
    ]  # other human votes under the same path
    frame.to_csv(moved / "data.csv", index=False)
    assert _keys(spec(night_tree)) != _keys(spec(moved))


def test_records_of_an_older_format_are_recomputed(capsys, night_tree: Path, tmp_path: Path) -> None:
    from lipsim_bench.cli import main

    out = tmp_path / "run"
    argv = ["--metrics", "pixel-l2", "--dataset", f"night:{night_tree}", "--evaluations", "natural", "--out", str(out)]
    assert main(argv) == 0
    record = next((out / "records").glob("*.json"))
    data = json.loads(record.read_text())
    assert data["format"] == RECORD_FORMAT and data["evaluation"]["kind"] == "clean"
    record.write_text(json.dumps({**data, "format": RECORD_FORMAT - 1}))
    capsys.readouterr()
    assert main(argv) == 0
    assert "computed all 1 unit(s)" in capsys.readouterr().out


def test_precision_enters_the_key_only_where_it_applies() -> None:
    from lipsim_bench.run.plan import metric_identity

    assert metric_identity("convsim-tiny", 0, "bf16")["precision"] == "bf16"
    assert "precision" not in metric_identity("convsim-tiny", 0)
    assert "precision" not in metric_identity("lipsim-tiny", 0, "bf16")  # certified metrics stay fp32


def test_a_bf16_run_keeps_the_decisions_of_fp32() -> None:
    import lipsim_bench as bench

    fp32 = bench.evaluate("convsim-tiny", "sample", ["natural"], n=40)
    bf16 = bench.evaluate("convsim-tiny", "sample", ["natural"], n=40, precision="bf16")
    assert fp32.records[0]["key"] != bf16.records[0]["key"]
    agree = (fp32.triplets["correct"].to_numpy() == bf16.triplets["correct"].to_numpy()).mean()
    assert agree >= 0.95, agree  # bf16 moves distances by about 1% (tests/metrics/test_precision.py)


def test_fp16_on_cpu_is_one_line(capsys) -> None:
    from lipsim_bench.cli import main

    assert main(["--metrics", "pixel-l2", "--evaluations", "natural", "--precision", "fp16", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--precision fp16 needs a CUDA device" in err and "Traceback" not in err
