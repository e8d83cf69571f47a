"""--teacher-projection: a seeded Gaussian projection lets a wide teacher (ST-LPIPS: 158,144 numbers) teach a small student."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lipsim_bench.errors import BenchError
from lipsim_bench.metrics.weightfiles import load_safetensors
from lipsim_bench.training import distill
from lipsim_bench.training.distill import TARGETS_CACHE, ImageListDataset, find_images
from lipsim_bench.training.projection import GaussianProjection
from tests.bench.training.test_training import SIZE, ToyStudent, ToyTeacher, distill_config, image_folder  # noqa: F401


def test_the_same_seed_gives_the_same_matrix() -> None:
    assert torch.equal(GaussianProjection(300, 8, seed=1).matrix, GaussianProjection(300, 8, seed=1).matrix)
    assert not torch.equal(GaussianProjection(300, 8, seed=1).matrix, GaussianProjection(300, 8, seed=2).matrix)


def test_squared_distances_are_kept_within_the_johnson_lindenstrauss_spread() -> None:
    """K = 512: relative spread sqrt(2/512) = 6%; every one of 100 pairs within 25% (4 spreads)."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(100, 4096, generator=generator), torch.randn(100, 4096, generator=generator)
    project = GaussianProjection(4096, 512, seed=0)
    ratio = (project(a) - project(b)).pow(2).sum(1) / (a - b).pow(2).sum(1)
    assert ((ratio > 0.75) & (ratio < 1.25)).all(), ratio
    assert abs(float(ratio.mean()) - 1) < 0.02


def test_a_wide_teacher_needs_the_projection_and_the_message_says_so(tmp_path: Path, image_folder: Path) -> None:  # noqa: F811
    with pytest.raises(BenchError, match="--teacher-projection 16"):
        distill(ToyStudent(), ToyTeacher(dim=64), image_folder, distill_config(tmp_path / "a", epochs=1))


def test_projected_targets_are_the_teachers_projected_unit_embeddings(tmp_path: Path, image_folder: Path) -> None:  # noqa: F811
    out = tmp_path / "run"
    teacher = ToyTeacher(dim=64)
    config = distill_config(out, epochs=1)
    config.teacher_projection = 16
    distill(ToyStudent(), teacher, image_folder, config)
    unit, _ = load_safetensors(out / TARGETS_CACHE, "test")
    dataset = ImageListDataset(find_images(image_folder), SIZE)
    clean = torch.stack([dataset[i][1] for i in range(len(dataset))])
    expected = F.normalize(GaussianProjection(64, 16, seed=config.seed)(teacher.embed(clean)), dim=1)
    assert torch.allclose(unit["unit"], expected, atol=1e-5)


def test_the_projection_size_must_be_positive(tmp_path: Path) -> None:
    config = distill_config(tmp_path, epochs=1)
    config.teacher_projection = 0
    with pytest.raises(BenchError, match="--teacher-projection"):
        config.validate()
