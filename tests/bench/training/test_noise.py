"""``--noise-sigma``: Gaussian noise on the reference only (finetune) or the student's views (distill), seeded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor

from lipsim_bench.datasets import TwoAFCDataset
from lipsim_bench.errors import BenchError
from lipsim_bench.metrics.base import PerceptualMetric
from lipsim_bench.training import DistillConfig, FinetuneConfig, distill, finetune
from lipsim_bench.training import cli as train_cli
from lipsim_bench.training.augment import gaussian_noise
from lipsim_bench.training.checkpoints import load_state_dict_file
from lipsim_bench.training.distill import DistillStep
from lipsim_bench.training.finetune import FinetuneStep
from tests.bench.training.test_training import SIZE, ToyStudent, ToyTeacher, toy_2afc
from tests.conftest import make_night_tree


@pytest.fixture(scope="module")
def two_afc(tmp_path_factory: pytest.TempPathFactory) -> TwoAFCDataset:
    return toy_2afc(tmp_path_factory.mktemp("toy"), 16, seed=3)


class Recorder(PerceptualMetric):
    """Embeds by flattening the pixels, and keeps every input it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.inputs: list[Tensor] = []

    def embed(self, x: Tensor) -> Tensor:
        self.inputs.append(x.detach().clone())
        return self.weight * x.flatten(1)


def triplet_batch(n: int = 6) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(7)
    images = {k: torch.rand(n, 3, SIZE, SIZE, generator=gen) for k in ("ref", "x0", "x1")}
    return {**images, "p": torch.linspace(0.0, 1.0, n)}


def finetune_inputs(sigma: float, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """(ref, x0, x1) as the model saw them in one fine-tuning step, with no flip or rotation."""
    model = Recorder()
    FinetuneStep(0.5, flip=False, rot90=False, noise_sigma=sigma)(
        model, triplet_batch(), torch.Generator().manual_seed(seed), torch.device("cpu")
    )
    (seen,) = model.inputs
    ref, x0, x1 = seen.split(6)
    return ref, x0, x1


def test_noise_goes_on_the_reference_only_unclamped_at_sigma() -> None:
    batch = triplet_batch()
    ref, x0, x1 = finetune_inputs(0.25, seed=0)
    assert torch.equal(x0, batch["x0"]) and torch.equal(x1, batch["x1"])
    noise = ref - batch["ref"]
    assert abs(float(noise.std()) - 0.25) < 0.01 and abs(float(noise.mean())) < 0.01
    assert float(ref.min()) < 0.0 and float(ref.max()) > 1.0  # unclamped, as smoothing adds it


def test_no_noise_at_sigma_zero_and_no_draws_from_the_generator() -> None:
    batch = triplet_batch()
    ref, _, _ = finetune_inputs(0.0, seed=0)
    assert torch.equal(ref, batch["ref"])
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    x = torch.rand(2, 3, 4, 4)
    assert gaussian_noise(x, 0.0, gen) is x and torch.equal(gen.get_state(), state)


def test_noise_follows_the_seed() -> None:
    same = finetune_inputs(0.25, seed=1)[0], finetune_inputs(0.25, seed=1)[0]
    assert torch.equal(*same)
    assert not torch.equal(finetune_inputs(0.25, seed=1)[0], finetune_inputs(0.25, seed=2)[0])


def test_distill_noise_is_on_both_student_views_and_not_on_the_targets() -> None:
    images = torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    targets = torch.zeros(4, 3 * SIZE * SIZE)
    seen = {}
    for sigma in (0.0, 0.5):
        model = Recorder()
        loss, _ = DistillStep(targets, sigma)(
            model, (torch.arange(4), images), torch.Generator().manual_seed(0), torch.device("cpu")
        )
        seen[sigma] = (model.inputs[0], float(loss.detach()))
    diff = seen[0.5][0] - seen[0.0][0]  # same generator, so the same views: the difference is the noise
    assert abs(float(diff[:4].std()) - 0.5) < 0.02 and abs(float(diff[4:].std()) - 0.5) < 0.02
    assert seen[0.5][1] > seen[0.0][1]  # the noisy views are further from the (clean, zero) targets


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_bad_sigma_is_one_line(bad: float, tmp_path: Path) -> None:
    for config in (FinetuneConfig(out=tmp_path, noise_sigma=bad), DistillConfig(out=tmp_path, noise_sigma=bad)):
        with pytest.raises(
            BenchError, match=r"^--noise-sigma must be a finite number >= 0 \(0: no noise\), got"
        ) as info:
            config.validate()
        assert "\n" not in str(info.value)


def test_cli_rejects_a_negative_sigma_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="--noise-sigma"):
        train_cli.cmd_train(["finetune", "--metric", "pixel-l2", "--noise-sigma", "-1", "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


def _finetune(data: TwoAFCDataset, out: Path, sigma: float):
    config = FinetuneConfig(
        out=out, epochs=2, batch_size=4, lr=3e-3, seed=0, noise_sigma=sigma, progress=False, quiet=True
    )
    return finetune(ToyStudent, data, config)


def test_tiny_noisy_finetune_is_reproducible_and_recorded(two_afc: TwoAFCDataset, tmp_path: Path) -> None:
    a, b = _finetune(two_afc, tmp_path / "a", 0.25), _finetune(two_afc, tmp_path / "b", 0.25)
    clean = _finetune(two_afc, tmp_path / "clean", 0.0)
    wa, wb, wc = (load_state_dict_file(r.final_path) for r in (a, b, clean))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)
    recorded = json.loads((tmp_path / "a" / "train_config.json").read_text())
    assert recorded["config"]["noise_sigma"] == 0.25
    assert json.loads((tmp_path / "clean" / "train_config.json").read_text())["config"]["noise_sigma"] == 0.0
    saved = json.loads(torch.load(tmp_path / "a" / "last.pt", weights_only=True)["fingerprint"])
    assert saved["noise_sigma"] == 0.25  # a resume with another sigma is refused
    with pytest.raises(BenchError, match="noise_sigma: was 0.25, now 0.5"):
        finetune(
            ToyStudent,
            two_afc,
            FinetuneConfig(
                out=tmp_path / "a",
                epochs=3,
                batch_size=4,
                lr=3e-3,
                noise_sigma=0.5,
                resume=True,
                progress=False,
                quiet=True,
            ),
        )


def test_tiny_noisy_distill_then_finetune_from_the_cli(
    tmp_path: Path, two_afc: TwoAFCDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = DistillConfig(
        out=tmp_path / "d", epochs=2, batch_size=8, lr=3e-3, noise_sigma=0.1, progress=False, quiet=True
    )
    result = distill(ToyStudent, ToyTeacher(), two_afc, config)
    assert result.finished and len(result.history) == 2
    assert json.loads((tmp_path / "d" / "train_config.json").read_text())["config"]["noise_sigma"] == 0.1

    monkeypatch.setitem(train_cli.STUDENTS, "toy", ToyStudent)
    night = make_night_tree(tmp_path / "night", [{"split": "train", "p": float(i % 2)} for i in range(6)])
    assert (
        train_cli.cmd_train(
            [
                "finetune",
                "--metric",
                "toy",
                "--dataset",
                f"night:{night}",
                "--split",
                "train",
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--noise-sigma",
                "0.25",
                "--no-progress",
                "--quiet",
                "--out",
                str(tmp_path / "f"),
            ]
        )
        == 0
    )
    saved = json.loads((tmp_path / "f" / "train_config.json").read_text())
    assert saved["config"]["noise_sigma"] == 0.25 and saved["args"]["noise_sigma"] == 0.25
