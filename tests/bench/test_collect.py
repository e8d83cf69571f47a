"""Tables and plots regenerate from records alone; report merges several runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lipsim_bench.cli import main
from lipsim_bench.report.tables import to_latex

OUTPUTS = ("scores.csv", "scores.md", "scores.tex", "triplets.csv")


def _run(capsys, dataset: Path, out: Path, metrics: str, *extra: str) -> None:
    assert (
        main(
            [
                "--metrics",
                metrics,
                "--dataset",
                f"night:{dataset}",
                "--steps",
                "2",
                "--eps",
                "0.5,1",
                "--batch-size",
                "4",
                "--out",
                str(out),
                *extra,
            ]
        )
        == 0
    )
    capsys.readouterr()


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_report_regenerates_tables_from_records_only(capsys, night_tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(capsys, night_tree, run, "pixel-l2,lipsim-tiny")
    original = {name: (run / name).read_text() for name in OUTPUTS}
    for name in OUTPUTS:
        (run / name).unlink()
    assert main(["report", str(run)]) == 0
    capsys.readouterr()
    assert (run / "scores.csv").read_text() == original["scores.csv"]
    strip = lambda text: text.split("- provenance:")[0]  # noqa: E731  (the footer counts records, read in another order)
    assert strip((run / "scores.md").read_text()) == strip(original["scores.md"])
    assert (run / "triplets.csv").read_text() == original["triplets.csv"]
    # and the figures from those CSVs alone (no records)
    import shutil

    shutil.rmtree(run / "records")
    assert main(["plot", str(run)]) == 0
    assert {"robustness_curves.png", "robustness_curves.pdf", "certified_curves.pdf"} <= {
        p.name for p in (run / "plots").iterdir()
    }
    assert "radius_scatter: not drawn, the run has no minimum-norm attack" in capsys.readouterr().out  # APGD only


def test_report_merges_runs_and_keeps_another_seed_apart(capsys, night_tree: Path, tmp_path: Path) -> None:
    _run(capsys, night_tree, tmp_path / "a", "pixel-l2")
    _run(capsys, night_tree, tmp_path / "b", "lipsim-tiny")
    _run(capsys, night_tree, tmp_path / "b", "lipsim-tiny", "--seed", "1")  # same cells, another setting
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "merged")]) == 0
    out = capsys.readouterr().out
    assert "| pixel-l2 |" in out and "| lipsim-tiny |" in out
    assert "replaced" not in out  # nothing was recomputed: another seed is another column, never a replacement
    merged = pd.read_csv(tmp_path / "merged" / "scores.csv")
    folder = pd.read_csv(tmp_path / "b" / "scores.csv")  # the run folder's own table holds both seeds too
    lipsim = merged[merged["metric"] == "lipsim-tiny"].reset_index(drop=True)
    pd.testing.assert_frame_equal(_canonical(lipsim), _canonical(folder))
    seeds = lipsim.groupby("seed")["evaluation"].apply(set).to_dict()
    # this set's votes are fractional, so each certified cell has the paper's definition beside it
    assert seeds[0] == {"natural", "certified", "certified-paper", "apgd"}
    assert seeds[1] == {"natural(seed=1)", "certified(seed=1)", "certified-paper(seed=1)", "apgd(seed=1)"}
    assert merged["metric"].drop_duplicates().tolist() == ["pixel-l2", "lipsim-tiny"]


def test_report_of_a_folder_without_records_is_one_line(capsys, tmp_path: Path) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "has no records/ folder" in capsys.readouterr().err


def test_latex_groups_eps_under_their_evaluation() -> None:
    table = pd.DataFrame(
        {"natural": [90.0], "apgd l2 0.5": [80.0], "apgd l2 1": [70.0], "certified l2 36/255": [60.0]},
        index=pd.Index(["lip_sim"], name="metric"),
    )
    tex = to_latex(table, caption="n = 5", footer=["provenance: x & y"])
    assert r"\multicolumn{2}{c}{apgd l2}" in tex and r"\multicolumn{1}{c}{certified l2}" in tex
    assert r"\cmidrule(lr){3-4}" in tex and r"lip\_sim & 90.00 & 80.00 & 70.00 & 60.00 \\" in tex
    assert r"x \& y" in tex and tex.count(r"\begin{tabular}{lcccc}") == 1


def test_report_of_a_single_group_split_names_the_split(capsys, tmp_path: Path) -> None:
    """A split with one group under another name (the sample set's test): same n, the split wins, notes carry over."""
    from tests.conftest import make_night_tree

    tree = make_night_tree(tmp_path / "nights", [{"split": "test", "is_imagenet": False, "p": 1.0}] * 3)
    run = tmp_path / "run"
    _run(capsys, tree, run, "pixel-l2,convsim-tiny")
    original = (run / "scores.md").read_text()
    assert main(["report", str(run), "--out", str(tmp_path / "again")]) == 0
    capsys.readouterr()
    again = (tmp_path / "again" / "scores.md").read_text()
    assert again.startswith("2AFC score (%) on night / test, n = 3 triplets")
    assert again.split("- provenance:")[0] == original.split("- provenance:")[0]
    assert "certified does not apply to convsim-tiny" in again
