"""Attacks through the runner: rows per eps, checked adversarial examples, certificates with teeth."""

from pathlib import Path

import pandas as pd

from lipsim_bench.cli import main
from lipsim_bench.metrics import register_metric, unregister_metric
from lipsim_bench.metrics.pixel import PixelL2


def test_apgd_rows_per_eps_and_consistency(capsys, night_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "--metrics",
            "pixel-l2",
            "--dataset",
            f"night:{night_tree}",
            "--out",
            str(out),
            "--attacks",
            "apgd,pgd",
            "--eps",
            "0.5,4,16",
            "--steps",
            "20",
            "--certify",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    scores = pd.read_csv(out / "scores.csv")
    test = scores[scores.split == "test"]
    for attack in ("apgd", "pgd"):
        rows = test[test.evaluation == attack].sort_values("eps")
        assert list(rows.eps) == [0.5, 4.0, 16.0]
        assert list(rows.score) == sorted(rows.score, reverse=True)  # never rises with eps
    natural = test[test.evaluation == "natural"].score.item()
    soft = test[~test.evaluation.isin(["natural", "certified-paper"])]  # the paper's definition: another scale
    assert (soft.score <= natural + 1e-9).all()
    # a large l2 ball around 16x16 images flips every pixel-l2 decision that can be flipped
    assert test[(test.evaluation == "apgd") & (test.eps == 16.0)].score.item() < natural
    triplets = pd.read_csv(out / "triplets.csv", dtype={"id": str})
    attacked = triplets[triplets.evaluation == "apgd"]
    assert (attacked.delta_norm <= attacked.eps * (1 + 1e-5)).all()
    # certified triplets at eps are never flipped at eps (the runtime check would have raised)
    cert = triplets[triplets.evaluation == "certified"].drop_duplicates("id").set_index("id").radius
    flipped = attacked[attacked.flipped.astype(bool)]
    assert not flipped.empty
    assert all(cert[i] <= e * (1 + 1e-6) for i, e in zip(flipped.id, flipped.eps))


def _run_overclaim(night_tree: Path, tmp_path: Path) -> int:
    @register_metric("test-overclaim")
    class Overclaim(PixelL2):
        lipschitz = 0.01

    try:
        return main(
            [
                "--metrics",
                "test-overclaim",
                "--dataset",
                f"night:{night_tree}",
                "--out",
                str(tmp_path / "r"),
                "--attacks",
                "apgd",
                "--eps",
                "16",
                "--steps",
                "20",
                "--no-certify",
            ]
        )
    finally:
        unregister_metric("test-overclaim")


def test_overclaimed_lipschitz_bound_is_refused_by_the_probe(capsys, night_tree: Path, tmp_path: Path) -> None:
    """A metric claiming a 100x too small Lipschitz constant gets 100x too large radii: the run must refuse,
    first by the bound probe on the first batch."""
    code = _run_overclaim(night_tree, tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and "'test-overclaim' declares a Lipschitz bound of 0.01" in err and "the bound is false" in err


def test_overclaimed_bound_past_the_probe_is_caught_by_the_attack(
    capsys, night_tree: Path, tmp_path: Path, monkeypatch
) -> None:
    """The attack's own certificate check stands behind the probe: with the probe blind, a flip inside a
    claimed radius still stops the run."""
    import lipsim_bench.evaluations.bound_checks as bound_checks

    monkeypatch.setattr(bound_checks, "check_declared_bound", lambda *args, **kwargs: None)
    code = _run_overclaim(night_tree, tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and "certificate violated" in err


def test_attack_units_resume_per_eps(capsys, night_tree: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"
    base = [
        "--metrics",
        "pixel-l2",
        "--dataset",
        f"night:{night_tree}",
        "--out",
        str(out),
        "--attacks",
        "apgd",
        "--steps",
        "5",
        "--no-certify",
    ]
    assert main(base + ["--eps", "0.5,1"]) == 0
    from lipsim_bench.evaluations import get_evaluation

    calls: list[float] = []
    apgd = get_evaluation("apgd")
    real = apgd.run
    monkeypatch.setattr(
        apgd, "run", lambda self, metric, batches, ctx: calls.append(ctx.threat.eps) or real(self, metric, batches, ctx)
    )
    assert main(base + ["--eps", "0.5,1,2"]) == 0
    assert calls == [2.0]  # only the new eps is computed
    capsys.readouterr()


def test_histogram_of_direct_attack(capsys, night_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "--metrics",
            "pixel-l2",
            "--dataset",
            f"night:{night_tree}",
            "--out",
            str(out),
            "--attacks",
            "none",
            "--no-certify",
            "--histogram",
            "--histogram-eps",
            "0.5",
            "--steps",
            "10",
            "--n",
            "4",
        ]
    )
    assert code == 0, capsys.readouterr().err
    frame = pd.read_csv(out / "histogram.csv")
    assert len(frame) == 4 and set(frame.metric) == {"pixel-l2"}
    # pixel-l2's embedding is the image: the direct attack moves it by at most eps, and PGD reaches the boundary
    assert (frame.distance <= 0.5 + 1e-5).all() and (frame.distance > 0.45).all()
    assert (out / "histogram.png").stat().st_size > 1000 and (out / "histogram.pdf").exists()


def test_a_score_that_rises_with_eps_is_reported() -> None:
    from lipsim_bench.report.outputs import monotonicity_notes

    scores = pd.DataFrame(
        {
            "metric": "m",
            "split": "test",
            "evaluation": ["natural", "apgd", "apgd", "apgd"],
            "norm": [None, "l2", "l2", "l2"],
            "eps": [None, 0.5, 1.0, 2.0],
            "score": [90.0, 80.0, 82.0, 50.0],
        }
    )
    notes = monotonicity_notes(scores, "test")
    assert len(notes) == 1 and "80.00 at 0.5 -> 82.00 at 1" in notes[0]
    assert monotonicity_notes(scores.assign(score=[90.0, 80.0, 70.0, 50.0]), "test") == []


def test_batch_size_is_part_of_an_attack_unit(capsys, night_tree: Path, tmp_path: Path, monkeypatch) -> None:
    """The random start is drawn per batch, so another batch size must not reuse attack records."""
    out = tmp_path / "run"
    base = [
        "--metrics",
        "pixel-l2",
        "--dataset",
        f"night:{night_tree}",
        "--out",
        str(out),
        "--attacks",
        "apgd",
        "--steps",
        "5",
        "--no-certify",
        "--eps",
        "1",
    ]
    assert main(base + ["--batch-size", "4"]) == 0
    from lipsim_bench.evaluations import get_evaluation

    calls: list[float] = []
    apgd = get_evaluation("apgd")
    real = apgd.run
    monkeypatch.setattr(
        apgd, "run", lambda self, metric, batches, ctx: calls.append(ctx.threat.eps) or real(self, metric, batches, ctx)
    )
    assert main(base + ["--batch-size", "4"]) == 0 and calls == []
    assert main(base + ["--batch-size", "3"]) == 0 and calls == [1.0]
    capsys.readouterr()
