"""The bundled models' recipe on a miniature sample set: each step of each model lowers its loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lipsim_bench.datasets.night import night_like_dataset
from lipsim_bench.datasets.sample import build_sample_dataset
from lipsim_bench.metrics.convsim import ConvSim
from lipsim_bench.metrics.lipsim.metric import LipSim
from lipsim_bench.training import DistillConfig, FinetuneConfig, distill, finetune


@pytest.fixture(scope="module")
def mini_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_dataset(tmp_path_factory.mktemp("sample") / "s", n_train=64, n_test=8, n_val=0, progress=False)


def losses(result) -> list[float]:
    return [row["loss"] for row in result.history]


@pytest.mark.slow  # three training stages end to end (about 10-18 s)
def test_convsim_then_lipsim_distill_then_finetune(mini_sample: Path, tmp_path: Path) -> None:
    train = night_like_dataset(mini_sample, "train", name="sample", image_size=None)
    torch.manual_seed(0)
    teacher = finetune(
        ConvSim(),
        train,
        FinetuneConfig(
            out=tmp_path / "convsim", epochs=4, batch_size=16, lr=1e-3, margin=0.5, progress=False, quiet=True
        ),
    )
    assert losses(teacher)[-1] < losses(teacher)[0]

    torch.manual_seed(0)
    student = distill(
        LipSim("tiny"),
        teacher.model.eval().requires_grad_(False),
        train,
        DistillConfig(
            out=tmp_path / "distill", epochs=3, batch_size=32, lr=3e-3, target_scale=20.0, progress=False, quiet=True
        ),
    )
    assert losses(student)[-1] < losses(student)[0]

    tuned = finetune(
        student.model,
        train,
        FinetuneConfig(
            out=tmp_path / "finetune", epochs=3, batch_size=16, lr=1e-3, margin=0.5, progress=False, quiet=True
        ),
    )
    assert losses(tuned)[-1] < losses(tuned)[0]
    assert tuned.model.lipschitz <= 1.0 + 1e-5  # training never leaves the 1-Lipschitz family
