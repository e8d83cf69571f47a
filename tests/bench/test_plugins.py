"""One-file plugins reach every output with no other file touched: a toy evaluation kind and a toy
attack (examples/, the recipes docs/plugins.md shows verbatim, checked by tests/test_docs.py), loaded with
--plugin, land in the tables in their kind's column group, in `plot`, in the dry run's cost table and in
`list`; an edited adapter is never served old records."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lipsim_bench.cli import main
from lipsim_bench.errors import BenchError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLUGINS = ["--plugin", str(EXAMPLES / "my_attack.py"), "--plugin", str(EXAMPLES / "my_evaluation.py")]


@pytest.fixture
def plugin_run(capsys, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    argv = PLUGINS + [
        "--metrics",
        "pixel-l2",
        "--n",
        "6",
        "--batch-size",
        "3",
        "--out",
        str(out),
        "--evaluations",
        "natural,certified,apgd,noise,brightness",
        "--set",
        "apgd.steps=2",
        "--set",
        "noise.draws=2",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    return out


def test_toy_kind_and_attack_in_every_table_in_their_column_group(plugin_run: Path) -> None:
    scores = pd.read_csv(plugin_run / "scores.csv")
    kinds = dict(zip(scores["evaluation"], scores["kind"]))
    assert kinds == {
        "natural": "clean",
        "certified": "certificate",
        "apgd": "attack",
        "noise": "attack",
        "brightness": "attack",
    }
    header = (plugin_run / "scores.md").read_text().splitlines()[2]
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    order = [c.split()[0] for c in columns]
    # clean first, then every attack-kind column (in the run's order), certificates last
    assert order == ["natural"] + ["apgd"] * 4 + ["noise"] * 4 + ["brightness"] * 3 + ["certified"] * 3
    tex = (plugin_run / "scores.tex").read_text()
    assert r"\multicolumn{4}{c}{noise l2}" in tex and r"\multicolumn{3}{c}{brightness linf}" in tex
    assert tex.index("noise l2") < tex.index("certified l2")


def test_toy_plugins_in_plot(plugin_run: Path, capsys) -> None:
    assert main(["plot", str(plugin_run)]) == 0
    capsys.readouterr()
    from lipsim_bench.report.plot_data import kinds

    scores = pd.read_csv(plugin_run / "scores.csv")
    panels = scores[kinds(scores) == "attack"][["evaluation", "norm"]].drop_duplicates()
    assert {("noise", "l2"), ("brightness", "linf")} <= set(map(tuple, panels.to_numpy()))
    assert (plugin_run / "plots" / "robustness_curves.png").stat().st_size > 1000


def test_toy_plugins_in_dry_run_and_list(capsys, tmp_path: Path) -> None:
    argv = PLUGINS + [
        "--metrics",
        "lipsim-tiny",
        "--n",
        "6",
        "--evaluations",
        "natural,noise,brightness",
        "--dry-run",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"lipsim-tiny\s+noise l2 0.25 \[attack\]\s+\d+ s", out)
    assert re.search(r"lipsim-tiny\s+brightness \[attack\]\s+\d+ s", out)


def test_list_shows_plugins_loaded_from_the_environment(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv(
        "LIPSIM_BENCH_PLUGINS", os.pathsep.join([str(EXAMPLES / "my_attack.py"), str(EXAMPLES / "my_evaluation.py")])
    )
    from lipsim_bench.plugins import load_plugins

    load_plugins()
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"brightness\s+attack, task 2afc: 2AFC score with the reference darkened", out)
    assert re.search(r"noise\s+attack, per threat model, task 2afc", out) and "draws=8" in out


def test_edited_plugin_metric_is_recomputed_and_reuse_is_reported(capsys, tmp_path: Path) -> None:
    plugin = tmp_path / "my_metrics.py"
    shutil.copy(EXAMPLES / "my_metrics.py", plugin)
    argv = [
        "--plugin",
        str(plugin),
        "--metrics",
        "mean-colour",
        "--n",
        "4",
        "--evaluations",
        "natural",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(argv) == 0
    assert "computed all 1 unit(s)" in capsys.readouterr().out
    assert main(argv) == 0
    assert "reused 1 of 1 unit(s) from earlier runs (computed 20" in capsys.readouterr().out
    from lipsim_bench.metrics import unregister_metric

    unregister_metric("mean-colour")
    plugin.write_text(plugin.read_text().replace("+ 0.1", "+ 0.2"))
    fresh = tmp_path / "edited.py"  # a new path: the first file's module stays imported in this process
    shutil.copy(plugin, fresh)
    assert main([*argv[:1], str(fresh), *argv[2:]]) == 0
    assert "computed all 1 unit(s)" in capsys.readouterr().out
    unregister_metric("mean-colour")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--plugin", "/no/such/file.py"], "--plugin /no/such/file.py: no such file"),
        (["--import", "no_such_module_xyz"], "--import no_such_module_xyz failed"),
        (["--evaluations", "naturall"], "unknown evaluation 'naturall' (did you mean 'natural'?)"),
        (["--evaluations", "natural,apgd", "--set", "apgd.stepz=3"], "evaluation 'apgd' has no option 'stepz'"),
        (["--evaluations", "natural,apgd", "--set", "apgd.steps=many"], "apgd.steps: 'many' is not an integer"),
        (["--evaluations", "natural", "--set", "apgd.steps=3"], "'apgd' is not among this run's evaluations"),
        (["--evaluations", "natural", "--set", "natural"], "write NAME.OPTION=VALUE"),
        (["--evaluations", "natural,natural"], "named twice"),
        (["--evaluations", "natural,certified", "--set", "certified.eps=1/0"], "certified.eps: '1/0' is not a number"),
        (["--evaluations", "natural", "--attacks", "pgd"], "either --evaluations or --attacks"),
        (["--metrics", "pixel-l3"], "did you mean 'pixel-l2'?"),
    ],
)
def test_bad_plugin_or_option_is_one_clear_line(capsys, argv: list[str], message: str) -> None:
    code = main(argv + ["--n", "2"])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_broken_plugin_file_is_one_line(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    assert main(["--plugin", str(bad), "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert "bad.py failed to import (RuntimeError: boom)" in err and "Traceback" not in err
    with pytest.raises(BenchError):
        from lipsim_bench.plugins import load_plugin_file

        load_plugin_file(tmp_path / "missing.py")
