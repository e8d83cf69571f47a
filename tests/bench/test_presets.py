"""Presets, --threat and --dry-run; the paper protocol end to end on CPU with random weights."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lipsim_bench.cli import main
from lipsim_bench.errors import BenchError
from lipsim_bench.protocol.presets import get_preset
from lipsim_bench.run.plan import RANDOM_WEIGHTS_ENV
from lipsim_bench.run_args import parse_run_args
from lipsim_bench.run_request import spec_from_args as config_from_args


def test_paper_preset_sets_the_protocol_and_options_override_it() -> None:
    config = config_from_args(parse_run_args(["--preset", "paper"]))
    assert config.metrics == ["dreamsim-clip", "dreamsim-open-clip", "dreamsim-dino", "dreamsim", "lipsim"]
    assert (config.dataset, config.split, config.evaluations, config.options["apgd"]["steps"]) == (
        "night",
        "test",
        ["natural", "certified", "apgd"],
        100,
    )
    assert config.threats == [("l2", [0.5, 1.0, 2.0, 3.0])]
    assert config.options["certified"]["eps"] == pytest.approx([36 / 255, 72 / 255, 108 / 255])
    assert config.download is True
    config = config_from_args(
        parse_run_args(["--preset", "paper", "--n", "7", "--steps", "5", "--metrics", "pixel-l2", "--no-download"])
    )
    assert (config.n, config.options["apgd"]["steps"], config.metrics, config.download) == (7, 5, ["pixel-l2"], False)


def test_threats_replace_not_extend_a_preset() -> None:
    robust = config_from_args(parse_run_args(["--preset", "robust"]))
    assert robust.threats == [("l2", [0.5, 1.0, 2.0, 3.0]), ("linf", [pytest.approx(4 / 255)])]
    assert {"rclip", "rclip-fare-convnext"} <= set(robust.metrics) and set(
        get_preset("paper").options["metrics"]
    ) <= set(robust.metrics)
    only = config_from_args(parse_run_args(["--preset", "robust", "--threat", "linf:8/255"]))
    assert only.threats == [("linf", [pytest.approx(8 / 255)])]
    eps = config_from_args(parse_run_args(["--preset", "robust", "--eps", "1"]))
    assert eps.threats == [("l2", [1.0])]
    with pytest.raises(BenchError, match="either --threat or --norm"):
        config_from_args(parse_run_args(["--threat", "l2:1", "--eps", "1"]))
    with pytest.raises(BenchError, match="NORM:EPS"):
        config_from_args(parse_run_args(["--threat", "l3:1"]))


def test_unknown_preset_is_one_line(capsys) -> None:
    assert main(["--preset", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


def test_paper_dry_run_offline_explains_what_it_needs(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIPSIM_BENCH_DATA", str(tmp_path / "empty-cache"))
    assert main(["--preset", "paper", "--dry-run", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "nothing is downloaded or computed" in out
    assert "nights.zip" in out and "nights_chunked/ref/NNN.zip" in out  # where NIGHT comes from
    for metric in ("dreamsim-clip", "dreamsim-open-clip", "dreamsim-dino", "dreamsim", "lipsim"):
        assert f"  {metric} " in out
    assert out.count("MISSING") == 5  # no weights on this machine
    assert "apgd l2 3" in out and "estimated time on one NVIDIA H100" in out and "per 1000 triplets" in out
    assert not (tmp_path / "run").exists() and not (tmp_path / "empty-cache").exists()


def test_dry_run_counts_triplets_and_stored_units(capsys, night_tree: Path, tmp_path: Path) -> None:
    argv = [
        "--metrics",
        "pixel-l2",
        "--dataset",
        f"night:{night_tree}",
        "--steps",
        "2",
        "--eps",
        "1",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(argv + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "here: 6 triplets" in out and "stored, skipped" not in out
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv + ["--dry-run"]) == 0
    assert capsys.readouterr().out.count("stored, skipped") == 3  # natural, certified, apgd l2 1


@pytest.mark.slow  # ViT-B CLIP and DINO on CPU (about 30 s); tests/bench/commands/test_compare.py runs the paper preset fast
def test_paper_protocol_on_cpu_with_random_weights(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path, adapter to table: clip and dino (real architectures, random weights) under the paper preset."""
    monkeypatch.setenv(RANDOM_WEIGHTS_ENV, "1")
    out_dir = tmp_path / "paper"
    code = main(
        [
            "--preset",
            "paper",
            "--dataset",
            "sample",
            "--metrics",
            "clip,dino",
            "--n",
            "2",
            "--steps",
            "1",
            "--out",
            str(out_dir),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    scores = pd.read_csv(out_dir / "scores.csv")
    test = scores[scores["split"] == "test"]
    assert set(test["metric"]) == {"clip (random weights)", "dino (random weights)"}  # never mistaken for the real ones
    attacks = test[test["evaluation"] == "apgd"]
    assert sorted(attacks["eps"].unique()) == [0.5, 1.0, 2.0, 3.0] and set(attacks["norm"]) == {"l2"}
    assert "certified does not apply to clip (random weights)" in captured.out  # no Lipschitz bound, no certificate
    assert "clip (random weights): randomly initialised" in captured.out  # the table's footer says so
    units = [json.loads(p.read_text())["unit"] for p in (out_dir / "records").glob("*.json")]
    assert len(units) == 2 * 6 and all(u["settings"]["weights"] == "random-init(seed=0)" for u in units)
    assert {u["metric"] for u in units} == {"clip (random weights)", "dino (random weights)"}
    assert set(pd.read_csv(out_dir / "triplets.csv")["metric"]) == {"clip (random weights)", "dino (random weights)"}
    log = (out_dir / "run.log").read_text()
    assert "computed: clip (random weights) natural" in log and "computed: clip natural" not in log
    assert all((u["settings"]["options"] or {}).get("steps", 1) == 1 for u in units)
    tex = (out_dir / "scores.tex").read_text()
    assert r"\multicolumn{4}{c}{apgd l2}" in tex and "provenance:" in tex and "clip (random weights)" in tex


def test_preset_offline_fails_in_one_line_and_computes_nothing(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIPSIM_BENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("LIPSIM_BENCH_NIGHT_URL", "http://127.0.0.1:1")  # nothing listens there
    assert main(["--preset", "paper", "--metrics", "pixel-l2", "--n", "2", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: could not download http://127.0.0.1:1/nights.zip") and "fetch night" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_run_without_preset_or_dataset_is_the_bundled_protocol() -> None:
    """``python run_bench.py``: 100 sample test triplets, APGD 20 steps (ST-LPIPS's attack cost on 2 cores)."""
    bare = config_from_args(parse_run_args([]))
    assert (bare.dataset, bare.n, bare.every, bare.options["apgd"]["steps"]) == ("sample", 100, 1, 20)
    assert "stlpips-alex" in bare.metrics and "stlpips-vgg" not in bare.metrics
    same = config_from_args(parse_run_args(["--preset", "bundled", "--metrics", "pixel-l2"]))
    assert (same.n, same.options["apgd"]["steps"]) == (100, 20)


def test_the_bundled_protocol_gives_way_to_explicit_options() -> None:
    full = config_from_args(parse_run_args(["--n", "300", "--steps", "100"]))
    assert (full.n, full.options["apgd"]["steps"]) == (300, 100)
    via_set = config_from_args(parse_run_args(["--set", "apgd.steps=100"]))
    assert int(via_set.options["apgd"]["steps"]) == 100  # --set values are coerced when the options are built
    named = config_from_args(parse_run_args(["--dataset", "sample"]))  # a named dataset: no implicit preset
    assert named.n is None and "steps" not in named.options.get("apgd", {})


def test_the_stlpips_preset_runs_vgg_on_the_bundled_protocol() -> None:
    spec = config_from_args(parse_run_args(["--preset", "stlpips"]))
    assert spec.metrics == ["stlpips-alex", "stlpips-vgg", "lipsim-tiny-stlpips"]
    assert (spec.dataset, spec.n, spec.options["apgd"]["steps"]) == ("sample", 100, 20)


def test_a_default_metric_without_its_weights_is_named_not_dropped_silently(
    capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lipsim_bench.metrics.stlpips import metric as stlpips

    monkeypatch.setattr(stlpips, "wheel_weights", lambda net: None)  # stlpips-pytorch not installed
    spec = config_from_args(parse_run_args([]))
    assert "stlpips-alex" not in spec.metrics
    err = capsys.readouterr().err
    assert "warning: stlpips-alex is left out of the default run" in err and "pip install" in err
    config_from_args(parse_run_args(["--metrics", "pixel-l2"]))  # named metrics: nothing to warn about
    assert "left out" not in capsys.readouterr().err
