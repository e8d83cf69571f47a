"""bench.evaluate: the one-call Python API gives the CLI's numbers, in memory or into a run folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import lipsim_bench as bench
from lipsim_bench.cli import main
from lipsim_bench.errors import BenchError


def test_evaluate_in_memory_equals_the_cli(capsys, night_tree: Path, tmp_path: Path) -> None:
    result = bench.evaluate(
        metric=["pixel-l2", "lipsim-tiny"],
        dataset=f"night:{night_tree}",
        evaluations=["natural", "certified", "apgd"],
        eps=[0.5, 1.0],
        apgd={"steps": 3},
        certified={"eps": [0.5, 1.0]},
        batch_size=4,
    )
    assert result.out_dir is None and not (tmp_path / "results").exists()
    # NIGHT's fractional votes: the paper's certified accuracy stands beside the soft certified score
    assert list(result.table.columns) == [
        "natural",
        "apgd l2 0.5",
        "apgd l2 1",
        "certified l2 0.5",
        "certified l2 1",
        "certified-paper l2 0.5",
        "certified-paper l2 1",
    ]
    assert set(result.triplets["evaluation"]) == {"natural", "certified", "apgd"}
    out = tmp_path / "cli"
    argv = [
        "--metrics",
        "pixel-l2,lipsim-tiny",
        "--dataset",
        f"night:{night_tree}",
        "--evaluations",
        "natural,certified,apgd",
        "--eps",
        "0.5,1",
        "--set",
        "apgd.steps=3",
        "--batch-size",
        "4",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    capsys.readouterr()
    cli = pd.read_csv(out / "scores.csv")
    cols = ["metric", "split", "evaluation", "eps", "score", "n"]
    pd.testing.assert_frame_equal(result.scores[cols].reset_index(drop=True), cli[cols], check_dtype=False)


def test_evaluate_into_a_run_folder_resumes(tmp_path: Path) -> None:
    kwargs = dict(
        metric="pixel-l2",
        dataset="sample",
        n=5,
        evaluations=["natural", "direct"],
        direct={"steps": 2},
        out=tmp_path / "run",
    )
    first = bench.evaluate(**kwargs)
    assert (tmp_path / "run" / "scores.csv").is_file() and (tmp_path / "run" / "histogram.csv").is_file()
    assert set(first.diagnostics) == {"histogram.csv"} and len(first.diagnostics["histogram.csv"]) == 5
    again = bench.evaluate(**kwargs)
    assert len(again.reused_times) == 2 and again.reuse_summary().startswith("reused 2 of 2")
    pd.testing.assert_frame_equal(first.scores, again.scores)


def test_evaluate_rejects_bad_options() -> None:
    with pytest.raises(BenchError, match="has no option 'stepz'"):
        bench.evaluate(metric="pixel-l2", n=2, evaluations=["natural", "apgd"], apgd={"stepz": 1})
    with pytest.raises(
        BenchError, match=r"sets options of 'apgd', which is not in evaluations=\['natural'\]; add it there"
    ):
        bench.evaluate(metric="pixel-l2", n=2, evaluations=["natural"], apgd={"steps": 1})


# -- every argument of evaluate() with odd values: one line naming it, before any work -----------------------

BASE = dict(metric="pixel-l2", n=2, evaluations=["natural"])
ATTACK = dict(metric="pixel-l2", n=2, evaluations=["natural", "apgd"], apgd={"steps": 1})

BAD_CALLS = [
    (dict(BASE, metric=""), "metric='' is empty"),
    (dict(BASE, metric=[]), "metric=[] is empty"),
    (dict(BASE, metric=None), "metric= takes a name or a list of names"),
    (dict(BASE, metric=3), "not a int"),
    (dict(BASE, metric=["pixel-l2", "pixel-l2"]), "'pixel-l2' is named twice"),
    (dict(BASE, metric="pixel-l3"), "did you mean 'pixel-l2'"),
    (dict(BASE, dataset=""), "dataset (--dataset) must be NAME[:ROOT]"),
    (dict(BASE, dataset=None), "dataset (--dataset) must be NAME[:ROOT]"),
    (dict(BASE, dataset="nite"), "did you mean 'night'"),
    (dict(BASE, evaluations=[]), "evaluations=[] is empty"),
    (dict(BASE, evaluations=3), "evaluations= takes a name or a list of names"),  # None: the task's clean score
    (dict(BASE, evaluations=[None]), "not a list holding NoneType"),
    (dict(BASE, evaluations=["natural", "natural"]), "'natural' is named twice"),
    (dict(BASE, split=3), "split (--split) must be a split's name"),
    (dict(BASE, split=""), "split (--split) must be a split's name"),
    (dict(BASE, split="tset"), "unknown split 'tset'"),
    (dict(BASE, n=0), "n (--n) must be a positive number"),
    (dict(BASE, n=2.5), "n (--n) must be a positive number"),
    (dict(BASE, every=None), "every (--every) must be a positive integer"),
    (dict(ATTACK, eps=[]), "eps is empty"),
    (dict(ATTACK, eps=[-1]), "eps: radius -1 must be a finite number >= 0"),
    (dict(ATTACK, eps=[float("nan")]), "eps: radius nan must be a finite number"),
    (dict(ATTACK, eps=[None]), "eps: None is not a radius"),
    (dict(ATTACK, eps=[True]), "eps: True is not a radius"),
    (dict(ATTACK, eps="a"), "eps: 'a' is not a number"),
    (dict(ATTACK, eps=[0.5, 0.5]), "eps 0.5 is given twice"),
    (dict(ATTACK, norm="L2"), "norm='L2': give 'l2' or 'linf'"),
    (dict(ATTACK, norm="linf", eps=[2]), "linf radius 2 is larger than 1"),
    (dict(ATTACK, threats=[]), "threats=[]: give a list of (norm, radii) pairs"),
    (dict(ATTACK, threats=[("l3", [0.5])]), "is not a threat model"),
    (dict(ATTACK, threats=["l3:0.5"]), "write NORM:EPS"),
    (dict(ATTACK, threats=[("l2", [])]), "threats: l2 radii is empty"),
    (dict(ATTACK, threats=[("l2", [0.5])], eps=[1.0]), "give either threats= or eps=/norm=, not both"),
    (dict(BASE, seed=-1), "seed (--seed) must be an integer"),
    (dict(BASE, seed=None), "seed (--seed) must be an integer"),
    (dict(BASE, batch_size=0), "batch_size (--batch-size) must be an integer >= 1"),
    (dict(BASE, batch_size=2.5), "batch_size (--batch-size) must be an integer >= 1"),
    (dict(BASE, batch_size=None), "batch_size (--batch-size) must be an integer >= 1"),
    (dict(BASE, device="gpu"), "device 'gpu' is not a device; use cpu, cuda or cuda:K"),
    (dict(BASE, device=""), "device is empty"),
    (dict(BASE, device=0), "device 0 is not a device name"),
    (dict(BASE, device="meta"), "runs on cpu or cuda (cuda:K), not meta"),
    (dict(BASE, out=""), "out='' is empty"),
    (dict(BASE, out=3), "out=3: give a folder path"),
    (dict(BASE, plugins=None), "plugins= takes a name or a list of names"),
    (dict(BASE, plugins=[3]), "not a list holding int"),
    (dict(BASE, plugins="no_such_plugin_file.py"), "no such file"),
    (dict(BASE, verify="yes"), "verify='yes': give True or False"),
    (dict(BASE, precision="fp64"), "precision (--precision) 'fp64' is not one of"),
    (dict(ATTACK, apgd=10), "apgd=10: give the options as a dict"),
    (dict(ATTACK, apgd=None), "apgd=None: give the options as a dict"),
    (dict(ATTACK, apgd={"steps": None}), "apgd.steps: None is not an integer"),
    (dict(ATTACK, apgd={"steps": [1, 2]}), "apgd.steps: [1, 2] is several values, but it takes one"),
    (dict(ATTACK, apgd={1: 2}), "option names are strings"),
    (dict(BASE, metrics="pixel-l2"), "evaluate() has no argument 'metrics' (did you mean 'metric'?)"),
    (dict(BASE, evaluation=["natural"]), "evaluate() has no argument 'evaluation' (did you mean 'evaluations'?)"),
    (
        dict(ATTACK, verify=True, apgd={"skip_proven": True}),
        "attacks every triplet, but apgd.skip_proven=true skips proven ones",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_CALLS, ids=[m[:40] for _, m in BAD_CALLS])
def test_every_bad_argument_is_one_line_before_any_work(
    tmp_path: Path, monkeypatch, kwargs: dict, message: str
) -> None:
    monkeypatch.chdir(tmp_path)  # a run that started anyway would leave files here
    with pytest.raises(BenchError) as caught:
        bench.evaluate(**kwargs)
    assert message in str(caught.value) and "\n" not in str(caught.value), str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_metric_object_is_refused_with_how_to_register_it() -> None:
    from lipsim_bench.metrics import create_metric

    for value in (create_metric("pixel-l2"), [create_metric("pixel-l2")]):
        with pytest.raises(
            BenchError, match=r"a metric object: register its class with lipsim_bench.metrics.register_metric"
        ):
            bench.evaluate(metric=value, n=2)


def test_an_unavailable_device_fails_before_the_run(tmp_path: Path) -> None:
    import torch

    wanted = "cuda:7" if torch.cuda.is_available() and torch.cuda.device_count() < 8 else "cuda"
    if torch.cuda.is_available() and wanted == "cuda":
        pytest.skip("every cuda device exists here")
    with pytest.raises(
        BenchError, match=r"^device cuda(:7)?: (CUDA is not available on this machine|this machine has)"
    ):
        bench.evaluate(metric="pixel-l2", n=2, device=wanted, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_device_is_picked_as_the_cli_picks_it() -> None:
    from lipsim_bench.devices import resolve_device

    result = bench.evaluate(metric="pixel-l2", n=2)  # no device: cuda when available, as --device
    assert {r["config"]["device"] for r in result.records} == {str(resolve_device(None))}


def test_friendly_forms_mean_what_the_cli_means(capsys, tmp_path: Path) -> None:
    """A comma-separated text, one radius, 'NORM:EPS' threats: the CLI's spellings give the CLI's columns."""
    text = bench.evaluate(metric="pixel-l2", n=2, evaluations="natural,apgd", eps="0.5,1", apgd={"steps": 1})
    typed = bench.evaluate(
        metric="pixel-l2", n=2, evaluations=["natural", "apgd"], threats=["l2:0.5", ("l2", [1.0])], apgd={"steps": 1}
    )
    assert list(text.table.columns) == list(typed.table.columns) == ["natural", "apgd l2 0.5", "apgd l2 1"]
    linf = bench.evaluate(metric="pixel-l2", n=2, evaluations=["apgd"], norm="linf", apgd={"steps": 1})
    assert list(linf.table.columns) == [
        "apgd linf 2/255",
        "apgd linf 4/255",
        "apgd linf 8/255",
    ]  # norm alone: its default radii
    api = bench.evaluate(metric="lipsim-tiny", n=2, evaluations=["natural", "certified"], eps=[0.5, 1])
    assert (
        main(
            [
                "--metrics",
                "lipsim-tiny",
                "--n",
                "2",
                "--evaluations",
                "natural,certified",
                "--eps",
                "0.5,1",
                "--out",
                str(tmp_path / "cli"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    cli = pd.read_csv(tmp_path / "cli" / "scores.csv")
    assert (
        sorted(api.scores["eps"].dropna()) == sorted(cli["eps"].dropna()) == [0.5, 1.0]
    )  # --eps: also the certified radii


def test_numpy_integers_are_integers() -> None:
    import numpy as np

    result = bench.evaluate(
        metric="pixel-l2", n=np.int64(2), seed=np.int64(3), batch_size=np.int32(2), every=np.int16(1)
    )
    assert list(result.table.columns) == ["natural"] and result.records[0]["config"]["seed"] == 3


def test_save_adversarial_keeps_the_attacks_examples(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = {"dataset": "sample", "n": 4, "evaluations": ["natural", "apgd"], "eps": [0.5], "apgd": {"steps": 2}}
    bench.evaluate("convsim-tiny", out=out, **run)
    assert not list((out / "records").glob("*.safetensors"))
    bench.evaluate("convsim-tiny", out=out, save_adversarial=True, **run)
    assert [p.name.split("__")[1] for p in (out / "records").glob("*.adversarial.safetensors")] == ["apgd"]
    with pytest.raises(BenchError, match="save_adversarial='yes': give True or False"):
        bench.evaluate("convsim-tiny", out=out, save_adversarial="yes", **run)
