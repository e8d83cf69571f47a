"""The commands after a run, on a retrieval run (H6's hostile pass): `validate` says in one line that it re-scores
2AFC entries only (it crashed on the missing d0 column) and still rejects an edited cell; `leaderboard` refuses
retrieval records in one line (it showed them under "2AFC score", "triplets", "perturbed: ref"); `plot` draws
robustness curves with the task's words, no 2AFC chance line and no clean cell at eps 0 (a stability curve
started at the clean Recall@1), and no longer fails on the stored adversarial queries."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from lipsim_bench.cli import main

RUN = [
    "--dataset",
    "sample-retrieval",
    "--n",
    "4",
    "--metrics",
    "pixel-l2",
    "--evaluations",
    "recall,stability-apgd",
    "--eps",
    "2",
    "--set",
    "stability-apgd.steps=3",
]


def quiet_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pixel-l2 on 4 bundled queries: clean Recall@1 and a 3-step stability attack at l2 2, queries kept."""
    folder = tmp_path_factory.mktemp("retrieval") / "run"
    code, _, err = quiet_main(*RUN, "--save-adversarial", "--out", str(folder))
    assert code == 0, err
    return folder


@pytest.fixture
def entry(run: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    code, _, err = quiet_main("entry", str(folder), "--metric", "pixel-l2")
    assert code == 0, err
    return folder / "pixel-l2.entry.json"


def test_validate_says_rescoring_is_2afc_only_and_still_checks_cells(entry: Path) -> None:
    code, out, err = quiet_main("validate", str(entry))
    assert code == 2 and "Traceback" not in err, out + err
    assert "rescoring: CANNOT RUN HERE: re-scoring checks 2AFC entries only" in out
    assert "cells: ok" in out and "verdict: not fully checked" in out
    data = json.loads(entry.read_text())
    data["cells"][0]["score"] += 25.0  # a wrong claim: the cells check recomputes it from the rows
    entry.write_text(json.dumps(data))
    code, out, _ = quiet_main("validate", str(entry), "--no-rescore")
    assert code == 1 and "cells: FAILED" in out and "verdict: REJECTED" in out, out


def test_leaderboard_refuses_retrieval_records_in_one_line(run: Path, entry: Path, tmp_path: Path) -> None:
    for given in (run, entry):
        code, out, err = quiet_main("leaderboard", str(given), "--out", str(tmp_path / "site"))
        assert code == 2 and err.count("\n") == 1, err
        assert "shows 2AFC records only" in err and "sample-retrieval (retrieval)" in err
        assert not (tmp_path / "site").exists()


def test_plot_speaks_the_task_and_starts_no_curve_at_the_clean_cell(run: Path, tmp_path: Path) -> None:
    from lipsim_bench.report.plots import plot_run

    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    notes: list[str] = []
    paths = plot_run(folder, formats=("png",), notes=notes)  # failed on the stored queries ('correct')
    assert [p.name for p in paths] == ["robustness_curves.png"]
    assert any("a retrieval run: plot draws its robustness curves only" in n for n in notes)

    import pandas as pd

    from lipsim_bench.report.figure_facts import Facts
    from lipsim_bench.report.plot_data import run_task
    from lipsim_bench.report.plots import robustness_figure

    task = run_task(folder)
    assert task.items == "queries"
    scores = pd.read_csv(folder / "scores.csv")
    fig = robustness_figure(scores, "test", Facts("sample-retrieval", "test", 4, task.items), None, task)
    ax = fig.axes[0]
    text = fig._suptitle.get_text() + ax.get_ylabel() + " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "2AFC" not in text and "triplets" not in text and "chance" not in text, text
    assert "n = 4 queries" in text and "over queries" in text
    xs = {float(x) for line in ax.get_lines() for x in line.get_xdata()}
    assert xs == {2.0}  # the stability curve has no eps-0 point taken from the clean Recall@1


def test_a_report_elsewhere_says_where_the_figure_is_drawn(tmp_path: Path) -> None:
    import pandas as pd

    from lipsim_bench.errors import BenchError
    from lipsim_bench.report.retrieval_figure import collect

    rows = pd.DataFrame(
        {"metric": ["pixel-l2"], "dataset": ["sample-retrieval"], "split": ["test"], "evaluation": ["recall-apgd"]}
        | {"norm": ["l2"], "eps": [2.0], "id": ["q000"], "agreement": [0.0], "top5": ["g0"], "adv_top5": ["g1"]}
    )
    with pytest.raises(BenchError) as caught:  # said "rerun the run", which draws nothing more
        collect(tmp_path, rows)
    assert "rerun" not in str(caught.value) and "into the run folder itself" in str(caught.value)


def test_plot_of_a_folder_of_csvs_only_reads_the_task_from_its_item_file(run: Path, tmp_path: Path) -> None:
    from lipsim_bench.report.plot_data import run_task

    for name in ("scores.csv", "queries.csv"):  # a folder handed on without records/
        shutil.copy(run / name, tmp_path / name)
    assert run_task(tmp_path).items == "queries"
    (tmp_path / "triplets.csv").write_text("")  # two tasks' files: no guess
    assert run_task(tmp_path).name == "2afc"
