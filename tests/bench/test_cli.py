"""The command line end to end on created datasets, and every bad input it must explain."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from lipsim_bench.cli import main
from lipsim_bench.errors import BenchError
from lipsim_bench.metrics import PerceptualMetric, register_metric, unregister_metric
from lipsim_bench.run.spec import parse_eps

#: natural scores only: attacks and certificates have their own tests
NATURAL = ("--attacks", "none", "--no-certify")


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """The CLI on ``argv``, natural scores only unless ``argv`` asks for evaluations."""
    wants = {"--attacks", "--certify", "--no-certify", "list", "--help"} & set(argv)
    code = main(list(argv) + ([] if wants else list(NATURAL)))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def toy_metric():
    """A metric defined in a test (one small class) that must run through the whole runner."""

    @register_metric("test-mean-colour", description="mean colour, 1 - cos")
    class MeanColour(PerceptualMetric):
        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3)) + 0.1

    yield "test-mean-colour"
    unregister_metric("test-mean-colour")


def test_toy_metric_runs_through_runner(capsys, night_tree: Path, tmp_path: Path, toy_metric: str) -> None:
    out_dir = tmp_path / "run"
    code, out, err = run(
        capsys,
        "--metrics",
        f"pixel-l2,{toy_metric}",
        "--dataset",
        f"night:{night_tree}",
        "--out",
        str(out_dir),
        "--batch-size",
        "4",
    )
    assert code == 0, err
    assert "| pixel-l2 |" in out and f"| {toy_metric} |" in out
    scores = pd.read_csv(out_dir / "scores.csv")
    assert list(scores.columns)[:8] == ["metric", "dataset", "split", "evaluation", "norm", "eps", "score", "n"]
    assert set(scores["split"]) == {"test", "test_imagenet", "test_no_imagenet"}
    triplets = pd.read_csv(out_dir / "triplets.csv")
    assert len(triplets) == 2 * 6
    for col in ("metric", "split", "evaluation", "eps", "id", "p", "d0", "d1", "correct"):
        assert col in triplets.columns
    # the table's number is recomputed from the per-triplet distances with the published formula
    px = triplets[triplets["metric"] == "pixel-l2"]
    agreement = (px.d0 < px.d1) * (1 - px.p) + (px.d1 < px.d0) * px.p + 0.5 * (px.d0 == px.d1)
    headline = scores[(scores.metric == "pixel-l2") & (scores.split == "test")]["score"].item()
    assert headline == pytest.approx(100 * agreement.mean())
    assert (out_dir / "scores.md").read_text().count("|") > 4
    records = list((out_dir / "records").glob("*.json"))
    assert len(records) == 2
    import json

    record = json.loads(records[0].read_text())
    assert {"config", "provenance", "scores", "unit", "key"} <= set(record)
    assert record["provenance"]["packages"]["torch"] and "commit" in record["provenance"]["git"]


def test_rerun_resumes_from_records(capsys, night_tree: Path, tmp_path: Path, monkeypatch) -> None:
    out_dir = tmp_path / "run"
    args = ("--metrics", "pixel-l2", "--dataset", f"night:{night_tree}", "--out", str(out_dir))
    assert run(capsys, *args)[0] == 0
    first = (out_dir / "scores.csv").read_text()
    from lipsim_bench.evaluations import get_evaluation

    def must_not_run(*a, **k):
        raise AssertionError("a finished unit was recomputed")

    monkeypatch.setattr(get_evaluation("natural"), "run", must_not_run)
    assert run(capsys, *args)[0] == 0
    assert (out_dir / "scores.csv").read_text() == first
    with pytest.raises(AssertionError, match="recomputed"):  # a changed seed is a new unit
        run(capsys, *args, "--seed", "1")


def test_changed_setting_is_recomputed(capsys, night_tree: Path, tmp_path: Path, monkeypatch) -> None:
    out_dir = tmp_path / "run"
    args = ("--metrics", "pixel-l2", "--dataset", f"night:{night_tree}", "--out", str(out_dir))
    assert run(capsys, *args)[0] == 0
    from lipsim_bench.evaluations import get_evaluation

    calls = []
    natural = get_evaluation("natural")
    real = natural.run
    monkeypatch.setattr(natural, "run", lambda *a: calls.append(1) or real(*a))
    assert run(capsys, *args, "--n", "3")[0] == 0
    assert calls == [1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--metrics", "nope"], "unknown metric 'nope'"),
        (["--dataset", "night:/does/not/exist"], "dataset root not found: /does/not/exist"),
        (["--dataset", "night"], "NIGHT is not in its cache"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--eps", "-0.5"], "--eps: -0.5 is negative"),
        (["--eps", "nan"], "not a finite number"),
        (["--eps", "abc"], "'abc' is not a number"),
        (["--attacks", "fgsm"], "unknown attack 'fgsm'"),
        (["--split", "tset"], "unknown split 'tset'"),
        (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "tpu"], "--device"),
    ],
)
def test_bad_input_is_one_clear_line(capsys, argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_column_and_missing_image_via_cli(capsys, night_tree: Path, tmp_path: Path) -> None:
    (night_tree / "ref" / "000" / "004.png").unlink()
    code, _, err = run(
        capsys, "--metrics", "pixel-l2", "--dataset", f"night:{night_tree}", "--out", str(tmp_path / "r")
    )
    assert code == 2 and "image missing" in err and "004.png" in err
    pd.read_csv(night_tree / "data.csv").drop(columns=["right_vote"]).to_csv(night_tree / "data.csv", index=False)
    code, _, err = run(capsys, "--metrics", "pixel-l2", "--dataset", f"night:{night_tree}")
    assert code == 2 and "lacks column(s) right_vote" in err


def test_corrupt_image_via_cli(capsys, night_tree: Path, tmp_path: Path) -> None:
    (night_tree / "distort" / "000" / "005_0.png").write_bytes(b"\x89PNG broken")
    code, _, err = run(
        capsys, "--metrics", "pixel-l2", "--dataset", f"night:{night_tree}", "--out", str(tmp_path / "r")
    )
    assert code == 2 and "image unreadable" in err and "005_0.png" in err


def test_unavailable_weights_via_cli(capsys) -> None:
    register_metric(
        "test-no-weights", weights="ckpt.pt", available=lambda: False, how_to_get="put ckpt.pt in ~/.cache"
    )(type("NoWeights", (PerceptualMetric,), {"embed": lambda self, x: x}))
    try:
        code, _, err = run(capsys, "--metrics", "test-no-weights", "--n", "2")
    finally:
        unregister_metric("test-no-weights")
    assert code == 2 and "test-no-weights" in err and "put ckpt.pt in ~/.cache" in err


def test_nan_metric_is_reported(capsys, night_tree: Path, tmp_path: Path) -> None:
    register_metric("test-nan")(type("NaNMetric", (PerceptualMetric,), {"embed": lambda self, x: x * float("nan")}))
    try:
        code, _, err = run(
            capsys, "--metrics", "test-nan", "--dataset", f"night:{night_tree}", "--out", str(tmp_path / "r")
        )
    finally:
        unregister_metric("test-nan")
    assert code == 2 and "non-finite distance" in err and "test-nan" in err


def test_parse_eps_fractions() -> None:
    assert parse_eps("36/255, 0.5") == pytest.approx([36 / 255, 0.5])
    with pytest.raises(BenchError):
        parse_eps("1/0")


def test_list_and_help(capsys) -> None:
    code, out, _ = run(capsys, "list")
    assert code == 0 and "pixel-l2" in out and "night:ROOT" in out and "sample" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--metrics" in capsys.readouterr().out


def test_certify_adds_rows_and_radii(capsys, night_tree: Path, tmp_path: Path, toy_metric: str) -> None:
    out_dir = tmp_path / "run"
    code, out, err = run(
        capsys,
        "--metrics",
        f"pixel-l2,{toy_metric}",
        "--dataset",
        f"night:{night_tree}",
        "--out",
        str(out_dir),
        "--certify",
        "--attacks",
        "none",
        "--eps",
        "0.1,1/255",
    )
    assert code == 0, err
    scores = pd.read_csv(out_dir / "scores.csv")
    certified = scores[(scores.evaluation == "certified") & (scores.split == "test")]
    assert set(certified.metric) == {"pixel-l2"}  # the toy metric has no Lipschitz bound
    assert sorted(certified.eps) == pytest.approx([1 / 255, 0.1])
    assert "certified l2 1/255" in out and "certified does not apply to test-mean-colour" in out
    triplets = pd.read_csv(out_dir / "triplets.csv")
    rows = triplets[triplets.evaluation == "certified"]
    assert rows["radius"].notna().all() and len(rows) == 2 * 6
    natural = scores[
        (scores.evaluation == "natural") & (scores.split == "test") & (scores.metric == "pixel-l2")
    ].score.item()
    assert (certified.score <= natural + 1e-9).all()


def test_dataset_error_in_a_loader_worker_is_one_line(capsys, night_tree: Path, tmp_path: Path) -> None:
    """torch re-raises a worker's error with the worker's traceback inside its message: print its own line."""
    (night_tree / "distort" / "000" / "005_0.png").write_bytes(b"\x89PNG broken")
    code, _, err = run(
        capsys,
        "--metrics",
        "pixel-l2",
        "--dataset",
        f"night:{night_tree}",
        "--out",
        str(tmp_path / "r"),
        "--workers",
        "1",
    )
    errors = [line for line in err.splitlines() if "error:" in line]
    assert (
        code == 2 and len(errors) == 1 and "005_0.png" in errors[0] and errors[0].startswith("error: image unreadable")
    )
    assert "Traceback" not in err and "Original" not in err
