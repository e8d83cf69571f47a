"""Gradient health: every input gradient an attack takes through the 2AFC classifier is checked, per triplet
(in the batch's order, through restrict), and a run marks and counts triplets that saw NaN or zero gradients."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from lipsim_bench.attacks.apgd import APGD
from lipsim_bench.attacks.base import input_gradient, predict
from lipsim_bench.cli import main
from lipsim_bench.evaluations.base import Context
from lipsim_bench.evaluations.grad_health import GradHealth, grad_notes
from lipsim_bench.evaluations.smoothing_attack import SmoothingAttack, SmoothingAttackOptions
from lipsim_bench.evaluations.twoafc import TwoAFCClassifier
from tests.bench.evaluations.test_smoothing import HalfSpace, embedded
from tests.conftest import make_night_tree

TOYS = Path(__file__).with_name("grad_health_toys.py")


class Toy(torch.nn.Module):
    """embed = x with the gradients of the examples at these rows (of the batch it is called on) made NaN (sqrt at 0) or zero (detached)."""

    def __init__(self, nan: set[int], zero: set[int]) -> None:
        super().__init__()
        self.nan, self.zero = nan, zero

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        rows = []
        for i, row in enumerate(x.flatten(1)):
            if i in self.nan:
                row = row + torch.sqrt(row * 0).sum()  # d sqrt(0) = inf, times 0: NaN
            elif i in self.zero:
                row = row.detach() + 0 * row
            rows.append(row + 0.1)
        return torch.stack(rows)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a - b) ** 2).sum(1)


def _classifier(metric: torch.nn.Module, n: int, health: GradHealth | None) -> TwoAFCClassifier:
    gen = torch.Generator().manual_seed(0)
    e0, e1 = torch.rand(n, 12, generator=gen), torch.rand(n, 12, generator=gen)
    return TwoAFCClassifier(metric, e0, e1, "toy", health)  # type: ignore[arg-type]


def test_counts_land_on_the_original_triplet_through_restrict() -> None:
    health = GradHealth(5)
    classifier = _classifier(Toy(nan={0}, zero={1}), 5, health)
    x, y = torch.rand(5, 3, 2, 2), torch.zeros(5, dtype=torch.long)
    input_gradient(classifier, x, y, "ce")  # all five: row 0 NaN, row 1 zero
    sub = classifier.restrict(torch.tensor([4, 2]))  # rows 0 and 1 of the subset are triplets 4 and 2
    input_gradient(sub.restrict(torch.tensor([True, False])), x[[4]], y[[4]], "ce")  # triplet 4 alone: row 0 NaN
    input_gradient(sub, x[[4, 2]], y[[4, 2]], "ce")  # triplet 4 NaN, triplet 2 zero
    assert health.nonfinite.tolist() == [1, 0, 0, 0, 2]
    assert health.zero.tolist() == [0, 1, 1, 0, 0]
    assert health.masked.tolist() == [True, True, True, False, True]
    with torch.no_grad():
        classifier(x)  # no gradient, nothing counted
    assert int(health.nonfinite.sum() + health.zero.sum()) == 5


def test_one_backward_counts_once_per_triplet_over_its_copies() -> None:
    """Noisy copies (EOT): non-finite when any copy is, zero only when every copy is."""
    health = GradHealth(2)
    copies = _classifier(Toy(nan={1}, zero={2, 3}), 2, health).restrict(torch.tensor([0, 0, 1, 1]))
    input_gradient(copies, torch.rand(4, 3, 2, 2), torch.zeros(4, dtype=torch.long), "ce")
    assert health.nonfinite.tolist() == [1, 0] and health.zero.tolist() == [0, 1]


def test_an_attack_meeting_nan_gradients_registers_them_and_a_healthy_one_nothing() -> None:
    x = torch.rand(3, 3, 2, 2)
    for nan, expected in (({0, 1, 2}, [True] * 3), (set(), [False] * 3)):
        health = GradHealth(3)
        classifier = _classifier(Toy(nan=nan, zero=set()), 3, health)
        APGD("l2", 0.5, steps=5, early_stop=False)(classifier, x, predict(classifier, x))  # all correct at first
        assert health.masked.tolist() == expected
        assert int(health.nonfinite.sum()) == (3 * 6 if nan else 0)  # at the start, then one per step


def test_torchattacks_apgd_gradients_are_seen_too() -> None:
    pytest.importorskip("torchattacks")
    from lipsim_bench.attacks.external import TorchattacksAPGD

    health = GradHealth(3)
    x = torch.rand(3, 3, 2, 2)
    classifier = _classifier(Toy(nan=set(), zero={0, 1, 2}), 3, health)
    TorchattacksAPGD("l2", 0.5, steps=3)(classifier, x, predict(classifier, x))
    assert (health.zero > 0).all() and int(health.nonfinite.sum()) == 0


def test_notes_count_the_unflipped_as_robust_without_evidence() -> None:
    rows = pd.DataFrame(
        {
            "norm": "l2",
            "eps": 0.5,
            "flipped": [1.0, 0.0, 0.0, 0.0],
            "grad_nonfinite": [2, 0, 1, 0],
            "grad_zero": [0, 3, 0, 0],
            "grad_masked": ["True", "True", "True", "False"],  # as read back from CSV
        }
    )
    assert grad_notes("toy", "apgd", rows) == [
        "toy apgd l2 0.5: 3 triplets saw non-finite or zero input gradients (grad_masked; 2 of them non-finite); "
        "2 of them count as robust without evidence"
    ]
    assert grad_notes("toy", "apgd", rows.assign(grad_masked=False)) == []


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grad-health")
    tree = make_night_tree(root / "nights", [{"split": "test", "p": float(i % 2)} for i in range(16)])
    out = root / "run"
    argv = ["--plugin", str(TOYS), "--metrics", "test-gh-nan,test-gh-quantised,test-gh-healthy"]
    argv += ["--dataset", f"night:{tree}", "--out", str(out), "--attacks", "apgd", "--eps", "0.5", "--steps", "5"]
    assert main([*argv, "--no-certify"]) == 0
    return out


def test_a_run_marks_nan_and_zero_gradients_and_leaves_healthy_metrics_alone(toy_run: Path) -> None:
    triplets = pd.read_csv(toy_run / "triplets.csv", dtype={"id": str})
    apgd = triplets[triplets.evaluation == "apgd"].set_index("metric")
    attacked = apgd["attacked"].astype(bool)
    for metric, column in (("test-gh-nan", "grad_nonfinite"), ("test-gh-quantised", "grad_zero")):
        mine = apgd.loc[metric]
        assert attacked[metric].sum() > 0
        assert (mine.loc[attacked[metric].to_numpy(), column] > 0).all()
        assert mine["grad_masked"].astype(bool).to_numpy().tolist() == attacked[metric].to_numpy().tolist()
    healthy = apgd.loc["test-gh-healthy"]
    assert attacked["test-gh-healthy"].sum() > 0
    assert not healthy["grad_masked"].astype(bool).any() and (healthy[["grad_nonfinite", "grad_zero"]] == 0).all().all()
    footer = (toy_run / "scores.md").read_text()
    for metric in ("test-gh-nan", "test-gh-quantised"):
        count = int(attacked[metric].sum())
        assert f"{metric} apgd l2 0.5: {count} triplets saw non-finite or zero input gradients" in footer
    assert "test-gh-healthy apgd l2 0.5: " not in footer


class FlatHalfSpace(HalfSpace):
    """A half-space decision whose embedding passes no gradient (quantisation's exactly-zero gradient)."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return flat.detach() + 0 * flat


@pytest.mark.parametrize(("metric", "masked"), [(HalfSpace(), False), (FlatHalfSpace(), True)])
def test_smoothing_attack_rows_mark_zero_gradients(metric: HalfSpace, masked: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    ref = 0.5 + 0.05 * torch.randn(6, 3, 4, 4, generator=gen, dtype=torch.float64)
    w = 0.2 * torch.randn(6, 3, 4, 4, generator=gen, dtype=torch.float64)
    item = embedded(metric, ref, ref - w, ref + 1.2 * w, torch.ones(6, dtype=torch.float64))  # x0 closer
    options = SmoothingAttackOptions(sigma=0.1, n0=20, n=50, m=2, steps=3, eps=(0.5,))
    rows = SmoothingAttack(options).run(metric, [item], Context(torch.device("cpu"), 0, "toy"))
    attacked = rows["attacked"].to_numpy()
    assert attacked.any()
    assert rows["grad_masked"].tolist() == (attacked.tolist() if masked else [False] * 6)
    assert (rows.loc[attacked, "grad_zero"] == (3 if masked else 0)).all()  # one backward per step
    notes = SmoothingAttack(options).notes("toy", rows)
    assert any("saw non-finite or zero input gradients" in line for line in notes) == masked
