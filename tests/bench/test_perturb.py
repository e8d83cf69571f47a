"""``--perturb ref|x0|x1|all``: the target is in every unit key and the table's title, smoothing refuses the others,
the classifiers decide as the clean distances do, and an l-inf flip inside the l2 certificate fails the run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import lipsim_bench as bench
from lipsim_bench.cli import main
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.attack import check_certificate
from lipsim_bench.evaluations.base import EmbeddedBatch
from lipsim_bench.evaluations.decided import l2_ball_radius
from lipsim_bench.evaluations.radii import certified_radius
from lipsim_bench.evaluations.targets import target_input
from lipsim_bench.evaluations.twoafc import TwoAFCClassifier
from lipsim_bench.metrics import create_metric

RUN = {"n": 6, "eps": [0.5], "apgd": {"steps": 2}, "batch_size": 6}
EVALUATIONS = ["natural", "certified", "apgd"]


def test_changing_the_target_recomputes_every_unit_and_records_store_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    ref = bench.evaluate("pixel-l2", "sample", EVALUATIONS, out=out, **RUN)
    x0 = bench.evaluate("pixel-l2", "sample", EVALUATIONS, out=out, perturb="x0", **RUN)
    assert not x0.reused_times and len(x0.records) == len(ref.records) == 3
    assert not {r["key"] for r in ref.records} & {r["key"] for r in x0.records}
    assert {r["unit"]["settings"]["perturb"] for r in x0.records} == {"x0"}
    assert {r["config"]["perturb"] for r in x0.records} == {"x0"}
    again = bench.evaluate("pixel-l2", "sample", EVALUATIONS, out=out, perturb="x0", **RUN)
    assert len(again.reused_times) == 3  # the same target again: nothing recomputed
    assert "perturbed: ref, x0 (per cell)" in again.markdown.splitlines()[0]  # the folder holds both targets


@pytest.mark.parametrize("perturb", ["x1", "all"])
def test_the_title_names_the_target(perturb: str) -> None:
    title = bench.evaluate("pixel-l2", "sample", EVALUATIONS, perturb=perturb, **RUN).markdown.splitlines()[0]
    assert title.endswith(f"seed 0, perturbed: {perturb}")
    paper = bench.evaluate("pixel-l2", "sample", EVALUATIONS, **RUN).markdown.splitlines()[0]
    assert paper.endswith("seed 0, perturbed: ref")  # the paper's protocol, named too


def test_smoothing_refuses_other_targets_in_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    argv = ["--metrics", "pixel-l2", "--dataset", "sample", "--n", "4", "--out", str(tmp_path / "r")]
    code = main([*argv, "--evaluations", "natural,smoothing", "--perturb", "x0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "evaluation 'smoothing' supports only --perturb ref, not --perturb x0" in err[0]
    with pytest.raises(BenchError, match="perturb \\(--perturb\\) 'x2' is not one of ref, x0, x1, all"):
        bench.evaluate("pixel-l2", "sample", ["natural"], n=4, perturb="x2")


def _triplets(n: int = 6) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    return tuple(torch.rand(n, 3, 8, 8, generator=gen) for _ in range(3))


@pytest.mark.parametrize("perturb", ["ref", "x0", "x1", "all"])
def test_each_targets_classifier_gives_the_clean_logits_and_restricts(perturb: str) -> None:
    metric = create_metric("lipsim-tiny").eval()
    ref, x0, x1 = _triplets()
    with torch.no_grad():
        e_ref, e0, e1 = metric.embed(torch.cat([ref, x0, x1])).chunk(3)
        expected = torch.stack([metric.distance(e_ref, e1), metric.distance(e_ref, e0)], dim=1)
        classifier = TwoAFCClassifier(metric, e0, e1, e_ref=e_ref, perturb=perturb)
        x = target_input(ref, x0, x1, perturb)
        assert x.shape[1] == (9 if perturb == "all" else 3)
        assert torch.allclose(classifier(x), expected, atol=1e-5)
        index = torch.tensor([4, 1])
        assert torch.allclose(classifier.restrict(index)(x[index]), expected[index], atol=1e-5)


def test_an_linf_flip_inside_the_l2_certificate_raises() -> None:
    """l-inf flips are checked through their l2 norm (delta_l2), against the run's target's radius."""
    metric = create_metric("pixel-l2")
    ref, x0, x1 = _triplets(2)
    e_ref, e0, e1 = (t.flatten(1) for t in (ref, x0, x1))
    d0, d1 = (e_ref - e0).norm(dim=1), (e_ref - e1).norm(dim=1)
    item = EmbeddedBatch({"ref": ref, "id": ["a", "b"], "p": torch.ones(2)}, e_ref, e0, e1, d0, d1)
    flipped = torch.tensor([True, False])
    linf = torch.full((2,), 1 / 255, dtype=torch.float64)
    r_x0 = certified_radius("l2", e_ref, e0, e1, 1.0, "x0")
    inside = r_x0 * 0.9  # inside the x0 radius, outside the joint one (R_all = R_x0 / sqrt 6)
    with pytest.raises(BenchError, match=r"certificate violated: triplet a was flipped \(linf attack on x0\)"):
        check_certificate(metric, item, flipped, "linf", linf, "pixel-l2", perturb="x0", delta_l2=inside)
    check_certificate(metric, item, flipped, "linf", linf, "pixel-l2", perturb="all", delta_l2=inside)
    check_certificate(metric, item, flipped, "linf", linf, "pixel-l2", perturb="x0")  # no l2 norm: unchecked
    with pytest.raises(BenchError, match="certificate violated"):
        check_certificate(metric, item, flipped, "l2", inside, "pixel-l2", perturb="x0")


def test_the_linf_ball_of_the_stacked_triplet_has_three_times_the_coordinates() -> None:
    assert l2_ball_radius("linf", 0.1, (3, 8, 8), "all") == pytest.approx(0.1 * math.sqrt(3 * 3 * 8 * 8))
    assert l2_ball_radius("linf", 0.1, (3, 8, 8), "x0") == pytest.approx(0.1 * math.sqrt(3 * 8 * 8))
