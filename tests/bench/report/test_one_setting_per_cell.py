"""A run folder's tables show every cell it holds, one setting per cell: a run of fewer metrics never
hides the others, a run with other settings gets its own column, a recomputation replaces (and says so),
a note never outlives the record it describes, and ``report`` filters by metric and evaluation."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from lipsim_bench.cli import main
from lipsim_bench.metrics import PerceptualMetric, register_metric, unregister_metric
from lipsim_bench.metrics.pixel import PixelL2
from lipsim_bench.report.collect import Entry, collect

TINY = ("--n", "6", "--eps", "0.25", "--steps", "2", "--batch-size", "6")


@pytest.fixture(autouse=True)
def toy() -> Iterator[None]:
    """ "toy": mean colour, 1 - cos, no Lipschitz bound (certified does not apply to it)."""
    register_metric("toy")(type("Toy", (PerceptualMetric,), {"embed": lambda self, x: x.mean(dim=(2, 3)) + 0.1}))
    yield
    unregister_metric("toy")


def _adapter(folder: Path, body: str) -> type:
    """A metric class from its own source file, as a plugin's: editing the file changes its records' keys."""
    path = folder / "toy_adapter.py"
    path.write_text(
        "from lipsim_bench.metrics import PerceptualMetric\n\n\nclass Toy(PerceptualMetric):\n"
        f"    def embed(self, x):\n        return {body}\n"
    )
    spec = importlib.util.spec_from_file_location(f"toy_adapter_{abs(hash(body))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # where inspect finds its source file
    spec.loader.exec_module(module)
    return module.Toy


def _run(capsys: pytest.CaptureFixture, out: Path, metrics: str, *extra: str) -> str:
    assert main(["--metrics", metrics, "--out", str(out), *TINY, *extra]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def _header(markdown: str) -> list[str]:
    return [
        c.strip()
        for c in next(line for line in markdown.splitlines() if line.startswith("| metric |")).strip("|").split("|")
    ]


def _rows(markdown: str) -> list[str]:
    return [
        line.split(" | ")[0][2:]
        for line in markdown.splitlines()
        if line.startswith("| ") and not line.startswith("| metric")
    ]


def test_a_run_of_fewer_metrics_keeps_the_other_rows(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(capsys, run, "pixel-l2,toy")
    printed = _run(capsys, run, "pixel-l2")
    markdown = (run / "scores.md").read_text()
    assert _rows(markdown) == ["pixel-l2", "toy"] and "| toy |" in printed
    assert set(pd.read_csv(run / "scores.csv")["metric"]) == {"pixel-l2", "toy"}
    assert "replaced" not in markdown  # the rerun reused pixel-l2's units: nothing was recomputed


def test_fewer_steps_get_their_own_column_and_never_replace(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(capsys, run, "pixel-l2,toy", "--steps", "3")
    _run(capsys, run, "toy", "--steps", "2")
    markdown = (run / "scores.md").read_text()
    assert _header(markdown) == ["metric", "natural", "apgd l2 0.25", "apgd(steps=2) l2 0.25", "certified l2 0.25"]
    toy_row = next(line for line in markdown.splitlines() if line.startswith("| toy |")).split(" | ")
    assert toy_row[2].strip() and toy_row[3].strip()  # both toy cells: 3 steps and 2 steps
    pixel_row = next(line for line in markdown.splitlines() if line.startswith("| pixel-l2 |")).split(" | ")
    assert pixel_row[3].strip() == ""
    scores = pd.read_csv(run / "scores.csv")
    assert sorted(scores.loc[scores["metric"] == "toy", "evaluation"]) == ["apgd", "apgd(steps=2)", "natural"]
    triplets = pd.read_csv(run / "triplets.csv")
    assert set(triplets.loc[triplets["metric"] == "toy", "evaluation"]) == {"apgd", "apgd(steps=2)", "natural"}
    assert main(["plot", str(run)]) == 0  # the renamed cells' triplets match their scores


def test_another_n_or_seed_gets_its_own_column(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(capsys, run, "pixel-l2,toy", "--attacks", "none", "--no-certify")
    _run(capsys, run, "toy", "--attacks", "none", "--no-certify", "--n", "4")
    _run(capsys, run, "toy", "--attacks", "none", "--no-certify", "--seed", "1")
    markdown = (run / "scores.md").read_text()
    assert _header(markdown) == ["metric", "natural", "natural(n=4)", "natural(seed=1)"]
    assert markdown.startswith("2AFC score (%) on sample / test, n = 6 triplets, seed 0")


def test_the_same_setting_recomputed_replaces_the_older_cell_and_says_so(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    unregister_metric("toy")
    register_metric("toy")(_adapter(tmp_path, "x.mean(dim=(2, 3)) + 0.1"))
    _run(capsys, run, "toy", "--attacks", "none", "--no-certify")
    unregister_metric("toy")  # the adapter's code changes: a new key, the same setting
    register_metric("toy")(_adapter(tmp_path, "x.amax(dim=(2, 3)) + 0.2"))
    _run(capsys, run, "toy", "--attacks", "none", "--no-certify")
    assert len(list((run / "records").glob("*.json"))) == 2
    markdown = (run / "scores.md").read_text()
    assert _header(markdown) == ["metric", "natural"] and _rows(markdown) == ["toy"]
    assert (
        "1 older cell(s) replaced by newer records of the same settings (recomputed after a change of source)"
        in markdown
    )


def test_a_stale_does_not_apply_note_is_dropped(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(capsys, run, "toy", "--attacks", "none")
    assert "certified does not apply to toy" in (run / "scores.md").read_text()
    unregister_metric("toy")
    register_metric("toy")(type("ToyBound", (PixelL2,), {}))  # the plugin now has a bound: certified applies
    _run(capsys, run, "toy", "--attacks", "none")
    markdown = (run / "scores.md").read_text()
    assert "certified l2 0.25" in _header(markdown)
    assert "does not apply" not in markdown


def test_a_run_where_nothing_applies_says_why_and_claims_no_tables(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    printed = _run(capsys, run, "toy", "--evaluations", "certified")
    assert "no scores (nothing to tabulate): certified does not apply to toy" in printed
    assert "diagnostics" not in printed
    assert f"wrote {run}/ (records/, run.log)" in printed
    assert not (run / "scores.csv").exists() and not (run / "scores.md").exists()
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"wrote nothing to {run}/")


def test_report_filters_by_metric_and_evaluation(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(capsys, run, "pixel-l2,toy")
    full = (run / "scores.md").read_text()
    assert (
        main(["report", str(run), "--metrics", "toy", "--evaluations", "natural,apgd", "--out", str(tmp_path / "f")])
        == 0
    )
    out = capsys.readouterr().out
    markdown = (tmp_path / "f" / "scores.md").read_text()
    assert _rows(markdown) == ["toy"] and _header(markdown) == ["metric", "natural", "apgd l2 0.25"]
    assert "| toy |" in out and "| pixel-l2 |" not in out
    assert (run / "scores.md").read_text() == full  # the run folder's own tables still hold every cell


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--metrics", "nope", "--out", "OUT"], "no metric 'nope' in these records; they hold: pixel-l2"),
        (
            ["--evaluations", "pgd", "--out", "OUT"],
            "no evaluation 'pgd' in these records; they hold: apgd, certified, natural",
        ),
        (["--metrics", ",", "--out", "OUT"], "--metrics names no metric; give comma-separated names"),
        (
            ["--metrics", "pixel-l2"],
            "--out report is a run folder: its tables show every cell of its own records; write a filtered",
        ),
        (["--metrics", "pixel-l2", "--out", "RUN"], "is a run folder: its tables show every cell of its own records"),
        (
            ["OTHER", "--out", "RUN"],
            "is a run folder: its tables show every cell of its own records; write a merged report",
        ),
    ],
)
def test_a_bad_filter_is_one_line(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], words: str
) -> None:
    run = tmp_path / "report"  # also the filtered report's default --out, from tmp_path
    _run(capsys, run, "pixel-l2")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(run, tmp_path / "other")
    swap = {"RUN": str(run), "OUT": str(tmp_path / "f"), "OTHER": str(tmp_path / "other")}
    assert main(["report", str(run), *[swap.get(a, a) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _record(
    metric: str, evaluation: str, score: float, time: str, n: int = 6, steps: int = 2, applies: bool = True
) -> dict:
    unit = {
        "metric": metric,
        "dataset": "sample",
        "split": "test",
        "n": n,
        "evaluation": evaluation,
        "settings": {"seed": 0, "options": {"steps": steps}},
    }
    rows = (
        [{"split": "test", "evaluation": evaluation, "norm": "l2", "eps": 0.5, "score": score, "n": n}]
        if applies
        else []
    )
    return {
        "unit": unit,
        "evaluation": {"name": evaluation, "kind": "attack"},
        "scores": rows,
        "applies": applies,
        "notes": [f"{metric} {evaluation} {time}"],
        "config": {"every": 1},
        "provenance": {"time": time},
    }


def test_resolution_on_records_alone() -> None:
    records = [
        _record("a", "apgd", 50.0, "t1", steps=100),
        _record("b", "apgd", 60.0, "t1", steps=100),
        _record("a", "apgd", 70.0, "t2", steps=20),
        _record("b", "apgd", 65.0, "t3", steps=100),
    ]
    got = collect([Entry(r) for r in records])
    cells = {(m, e): s for m, e, s in zip(got.scores["metric"], got.scores["evaluation"], got.scores["score"])}
    assert cells == {("a", "apgd"): 50.0, ("b", "apgd"): 65.0, ("a", "apgd(steps=20)"): 70.0}
    assert "b apgd t1" not in got.notes and "b apgd t3" in got.notes  # the replaced record's note is gone
    assert "apgd(steps=20): a apgd t2" in got.notes
    assert any("1 older cell(s) replaced" in n for n in got.notes)


def test_a_folder_named_twice_or_copied_is_one_computation(capsys, tmp_path: Path) -> None:
    """Its records are the same computations: nothing is 'replaced', every cell appears once."""
    run = tmp_path / "run"
    _run(capsys, run, "pixel-l2", "--attacks", "none", "--no-certify")
    shutil.copytree(run, tmp_path / "copy")
    assert main(["report", str(run), str(run), str(tmp_path / "copy"), "--out", str(tmp_path / "merged")]) == 0
    out = capsys.readouterr().out
    assert "replaced" not in out and _header(out) == ["metric", "natural"] and _rows(out) == ["pixel-l2"]
    assert len(pd.read_csv(tmp_path / "merged" / "scores.csv")) == 1


def test_a_diagnostics_only_run_names_what_it_wrote_and_plots(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    printed = _run(capsys, run, "pixel-l2", "--evaluations", "direct", "--n", "3")
    assert "no scores (diagnostics only: histogram.csv, histogram.png, histogram.pdf)" in printed
    assert f"wrote {run}/ (histogram.csv, histogram.png, histogram.pdf, records/, run.log)" in printed
    assert not (run / "scores.csv").exists()
    assert main(["plot", str(run)]) == 0  # the histogram alone is a figure (no "has no scores.csv")
    assert (run / "plots" / "histograms.png").is_file()


def test_an_option_named_like_a_run_setting_says_whose_it_is() -> None:
    """smoothing's n (noise samples) is not the run's n (triplets): both are in the setting, apart."""
    from lipsim_bench.report.variants import setting, variant_name

    record = {
        "unit": {"n": 6, "settings": {"seed": 0, "options": {"n": 1000, "sigma": 0.25, "eps": [0.5]}}},
        "evaluation": {"name": "smoothing(sigma=0.25)"},
        "config": {"every": 1},
    }
    chosen = setting(record)
    assert (chosen["n"], chosen["smoothing.n"], chosen["sigma"]) == ("6", "1000", "0.25") and "eps" not in chosen
    assert variant_name("smoothing(sigma=0.25)", {"smoothing.n": "100"}) == "smoothing(sigma=0.25, smoothing.n=100)"


def test_diagnostics_at_two_settings_are_both_kept_and_named(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(capsys, run, "pixel-l2", "--evaluations", "direct", "--n", "3")
    _run(capsys, run, "pixel-l2", "--evaluations", "direct", "--n", "3", "--set", "direct.eps=1")
    labels = pd.read_csv(run / "histogram.csv").groupby("metric").size().to_dict()
    assert len(labels) == 2 and labels["pixel-l2"] == 3
    assert any(label.startswith("pixel-l2 [direct(eps=1.0") for label in labels)


def test_a_record_whose_rows_name_several_columns_keeps_them_apart_at_another_setting() -> None:
    """A plugin may score rows under names other than its own: each is renamed on its own, never merged."""
    from lipsim_bench.report.tables import render_tables

    records = [_record("a", "two", 50.0, "t1", steps=100), _record("a", "two", 60.0, "t2", steps=20)]
    for record, score in zip(records, (40.0, 30.0)):
        record["scores"].append({**record["scores"][0], "evaluation": "two-b", "score": score})
    got = collect([Entry(r) for r in records])
    assert sorted(got.scores["evaluation"]) == ["two", "two(steps=20)", "two-b", "two-b(steps=20)"]
    assert "| a | 50.00 | 40.00 | 60.00 | 30.00 |" in render_tables(got.scores, "sample", "test", [], "p").markdown
