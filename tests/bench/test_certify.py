"""Certificates: sound against a strong attack, tight where they should be, and the paper's formula beaten."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import Tensor

from lipsim_bench.cli import main
from lipsim_bench.evaluations.certified import declared_bound_metrics, declared_bound_note
from lipsim_bench.evaluations.radii import certified_agreement, certified_radius, cosine_radius, l2_radius, paper_radius
from lipsim_bench.metrics import PerceptualMetric, register_metric, unregister_metric
from lipsim_bench.report.tables import render_tables

Embed = Callable[[Tensor], Tensor]


def decision_margin(kind: str, e: Tensor, e0: Tensor, e1: Tensor) -> Tensor:
    """Signed quantity whose sign is the 2AFC decision (positive: x1 is picked)."""
    if kind == "cosine":
        n0, n1 = e0 / e0.norm(dim=1, keepdim=True), e1 / e1.norm(dim=1, keepdim=True)
        return (e * (n1 - n0)).sum(dim=1)
    return (e - e1).pow(2).sum(dim=1).neg() + (e - e0).pow(2).sum(dim=1)


def strongest_flip(
    embed: Embed, kind: str, x: Tensor, e0: Tensor, e1: Tensor, radius: Tensor, steps: int = 300, restarts: int = 3
) -> Tensor:
    """l2 PGD (normalised gradient, decaying step, random starts) pushing the decision across; True where it flipped."""
    sign = decision_margin(kind, embed(x), e0, e1).sign()
    flipped = torch.zeros(len(x), dtype=torch.bool)
    shape = (-1,) + (1,) * (x.dim() - 1)
    for restart in range(restarts):
        gen = torch.Generator().manual_seed(restart)
        delta = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        delta = delta / delta.flatten(1).norm(dim=1).view(shape) * radius.view(shape) * 0.5
        for step in range(steps):
            delta.requires_grad_(True)
            loss = (sign * decision_margin(kind, embed(x + delta), e0, e1)).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                lr = 0.25 * radius * (1 - step / steps) + 1e-3 * radius
                delta = delta - lr.view(shape) * grad / grad.flatten(1).norm(dim=1).clamp_min(1e-30).view(shape)
                norm = delta.flatten(1).norm(dim=1)
                delta = delta * torch.clamp(radius / norm.clamp_min(1e-30), max=1.0).view(shape)
                flipped |= decision_margin(kind, embed(x + delta), e0, e1).sign() != sign
    return flipped


def one_lipschitz_mlp(dim_in: int, dim_out: int, seed: int) -> Embed:
    """A nonlinear map with proven Lipschitz constant <= 1: spectrally normalised layers and ReLU."""
    gen = torch.Generator().manual_seed(seed)
    weights = []
    for a, b in ((dim_in, 64), (64, 64), (64, dim_out)):
        w = torch.randn(b, a, generator=gen, dtype=torch.float64)
        weights.append(w / torch.linalg.matrix_norm(w, ord=2))
    bias = torch.randn(64, generator=gen, dtype=torch.float64) * 0.1

    def embed(x: Tensor) -> Tensor:
        h = torch.relu(x.flatten(1) @ weights[0].T + bias)
        h = torch.relu(h @ weights[1].T)
        return h @ weights[2].T + 3.0 * torch.ones(dim_out, dtype=torch.float64) / dim_out**0.5

    return embed


@pytest.mark.parametrize("kind", ["cosine", "l2"])
def test_no_flip_inside_certified_radius(kind: str) -> None:
    torch.manual_seed(0)
    embed = one_lipschitz_mlp(48, 16, seed=1)
    x, x0, x1 = (torch.rand(32, 3, 4, 4, dtype=torch.float64) for _ in range(3))
    e, e0, e1 = embed(x), embed(x0), embed(x1)
    radius = certified_radius(kind, e, e0, e1, lipschitz=1.0)
    assert (radius > 0).all()
    assert not strongest_flip(embed, kind, x, e0, e1, 0.999 * radius).any()


def test_pixel_l2_bisector_radius_is_exact() -> None:
    """For the identity embedding the radius is the exact flip distance: the attack flips just beyond it."""
    torch.manual_seed(0)
    x, x0, x1 = (torch.rand(16, 3, 4, 4, dtype=torch.float64) for _ in range(3))
    identity: Embed = lambda z: z.flatten(1)  # noqa: E731
    radius = l2_radius(x, x0, x1, lipschitz=1.0)
    assert not strongest_flip(identity, "l2", x, x0.flatten(1), x1.flatten(1), 0.999 * radius).any()
    assert strongest_flip(identity, "l2", x, x0.flatten(1), x1.flatten(1), 1.01 * radius).all()


def test_cosine_radius_is_exact_for_an_isometric_linear_embedding() -> None:
    """An overestimated radius would be caught: 1% beyond the radius the attack flips every decision."""
    torch.manual_seed(0)
    embed: Embed = lambda z: z.flatten(1)[:, :12] + 0.2  # noqa: E731  (a projection: 1-Lipschitz, tight)
    x, x0, x1 = (torch.rand(16, 3, 4, 4, dtype=torch.float64) for _ in range(3))
    e0, e1 = embed(x0), embed(x1)
    radius = cosine_radius(embed(x), e0, e1, lipschitz=1.0)
    assert not strongest_flip(embed, "cosine", x, e0, e1, 0.999 * radius).any()
    assert strongest_flip(embed, "cosine", x, e0, e1, 1.01 * radius).all()


def test_paper_formula_is_beaten_when_the_embedding_norm_is_below_one() -> None:
    """A 1-Lipschitz embedding whose reference has norm < 1: the paper's radius is too large."""
    torch.manual_seed(0)
    x, x0, x1 = (torch.rand(16, 3, 4, 4, dtype=torch.float64) for _ in range(3))
    offset = -x.flatten(1)[:, :4].mean(dim=0) + 0.01  # centre the references near the origin
    embed: Embed = lambda z: z.flatten(1)[:, :4] + offset  # noqa: E731
    small = embed(x).norm(dim=1) < 0.9
    assert small.sum() >= 8
    x, x0, x1 = x[small], x0[small], x1[small]
    e, e0, e1 = embed(x), embed(x0), embed(x1)
    cos = lambda a, b: (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))  # noqa: E731
    d0, d1 = 1 - cos(e, e0), 1 - cos(e, e1)
    sound, claimed = cosine_radius(e, e0, e1, 1.0), paper_radius(d0, d1, e0, e1, 1.0)
    assert torch.allclose(claimed, sound / e.norm(dim=1))
    assert strongest_flip(embed, "cosine", x, e0, e1, 0.999 * claimed).all()
    assert not strongest_flip(embed, "cosine", x, e0, e1, 0.999 * sound).any()


def test_lipschitz_constant_scales_the_radius_and_must_be_positive() -> None:
    e, e0, e1 = (torch.randn(4, 8) for _ in range(3))
    assert torch.allclose(certified_radius("cosine", e, e0, e1, 2.0), cosine_radius(e, e0, e1, 1.0) / 2)
    with pytest.raises(ValueError):
        certified_radius("cosine", e, e0, e1, 0.0)
    with pytest.raises(ValueError, match="no certificate"):
        certified_radius("lpips", e, e0, e1, 1.0)


def test_certified_agreement_worst_case() -> None:
    agreement = torch.tensor([1.0, 1.0, 0.8, 0.5])
    p = torch.tensor([1.0, 0.0, 0.8, 0.5])
    radius = torch.tensor([0.5, 0.1, 0.1, 0.0])
    assert certified_agreement(agreement, p, radius, 0.2).tolist() == pytest.approx([1.0, 0.0, 0.2, 0.5])


# -- a declared bound: refused when false on sight, marked when merely unproven ----------------------------------


def _cli_error(capsys: pytest.CaptureFixture, tmp_path: Path, metric: str) -> str:
    """The run's one error line (exit 2) for ``metric`` under a certificate."""
    code = main(
        [
            "--metrics",
            metric,
            "--dataset",
            "sample",
            "--n",
            "8",
            "--evaluations",
            "natural,certified",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    lines = [line[line.index("error: ") :] for line in err.replace("\r", "\n").splitlines() if "error: " in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"lipschitz": 0.2}, "declares a Lipschitz bound of 0.2 for 64x64 images, but "),
        (
            {"lipschitz": 1.0, "distance_kind": "l2", "distance": None},
            "declares distance_kind 'l2', but its distance() is not",
        ),
    ],
    ids=["bound-5x-too-small", "l2-kind-cosine-distance"],
)
def test_a_false_claim_is_one_line_exit_2_naming_the_metric(capsys, tmp_path: Path, attrs: dict, message: str) -> None:
    """pixel-l2's identity embedding from a plugin: every pair moves it by exactly 1 per unit, so a bound of 0.2 is
    provably false; an l2 kind over the inherited cosine distance would certify from the wrong radius."""
    body = {
        "embed": lambda self, x: x,
        "distance_kind": "l2",
        "distance": lambda self, a, b: (a - b).flatten(1).norm(dim=1),
        **attrs,
    }
    if body["distance"] is None:
        del body["distance"]
    register_metric("false-claim", description="test")(type("FalseClaim", (PerceptualMetric,), body))
    try:
        line = _cli_error(capsys, tmp_path, "false-claim")
    finally:
        unregister_metric("false-claim")
    assert "metric 'false-claim'" in line and message in line
    assert "the bound is false" in line if "lipschitz" in message.lower() else "set distance_kind = 'cosine'" in line


def test_declared_cells_are_marked_and_proven_ones_are_not() -> None:
    """The table marks a metric's certified cells exactly where its records' notes say the bound is only declared."""
    rows = pd.DataFrame(
        [
            {
                "metric": m,
                "dataset": "sample",
                "split": "test",
                "evaluation": e,
                "norm": norm,
                "eps": eps,
                "score": 50.0,
                "n": 10,
                "kind": kind,
                "seed": 0,
                "settings": "{}",
            }
            for m in ("plugin", "lipsim-tiny")
            for e, norm, eps, kind in (
                ("natural", None, None, "clean"),
                ("apgd", "l2", 0.5, "attack"),
                ("certified", "l2", 0.5, "certificate"),
                ("smoothing(sigma=0.25)", "l2", 0.5, "certificate"),
            )
        ]
    )
    notes = [declared_bound_note("plugin")]
    assert declared_bound_metrics(notes) == {"plugin"} and declared_bound_metrics(
        ["smoothing(sigma=0.25): " + notes[0]]
    ) == {"plugin"}
    document = render_tables(rows, "sample", "test", notes, "provenance: test")
    lines = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in document.markdown.splitlines()
        if line.startswith("| ")
    }
    header = lines["metric"]
    assert lines["plugin"][header.index("certified l2 0.5")] == "50.00 (\u2020)"
    assert all("\u2020" not in cell for name, cell in zip(header, lines["plugin"]) if name != "certified l2 0.5")
    assert all("\u2020" not in cell for cell in lines["lipsim-tiny"])
    assert (
        "- (\u2020) bound declared by plugin, not verified by the project; run an attack or --verify"
        in document.markdown
    )
    assert "\\textsuperscript{(\u2020)}" in document.latex
    plain = render_tables(rows, "sample", "test", [], "provenance: test")
    assert "\u2020" not in plain.markdown
