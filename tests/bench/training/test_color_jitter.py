"""``--color-jitter`` (finetune): photometric jitter on each image of a triplet on its own, seeded, off by default."""

from __future__ import annotations

from pathlib import Path

import torch

from lipsim_bench.training import FinetuneConfig
from lipsim_bench.training import cli as train_cli
from lipsim_bench.training.finetune import FinetuneStep
from tests.bench.training.test_noise import Recorder, triplet_batch


def seen(jitter: bool, seed: int) -> list[torch.Tensor]:
    model = Recorder()
    step = FinetuneStep(0.5, flip=False, rot90=False, color_jitter=jitter)
    step(model, triplet_batch(), torch.Generator().manual_seed(seed), torch.device("cpu"))
    return list(model.inputs[0].split(6))


def test_off_by_default_and_then_images_are_untouched() -> None:
    batch = triplet_batch()
    assert FinetuneConfig(out=Path(".")).color_jitter is False
    assert all(torch.equal(a, batch[k]) for a, k in zip(seen(False, 0), ("ref", "x0", "x1")))


def test_each_image_is_jittered_on_its_own_and_follows_the_seed() -> None:
    batch = triplet_batch()
    ref, x0, x1 = seen(True, 0)
    changed = [not torch.equal(a, batch[k]) for a, k in zip((ref, x0, x1), ("ref", "x0", "x1"))]
    assert all(changed)
    # independent draws: the brightness ratio applied to ref and x0 differs within a triplet
    assert not torch.allclose(
        ref.mean(dim=(1, 2, 3)) / batch["ref"].mean(dim=(1, 2, 3)),
        x0.mean(dim=(1, 2, 3)) / batch["x0"].mean(dim=(1, 2, 3)),
        atol=1e-3,
    )
    assert all(torch.equal(a, b) for a, b in zip(seen(True, 0), seen(True, 0)))
    assert not torch.equal(seen(True, 0)[0], seen(True, 1)[0])
    assert float(ref.min()) >= 0.0 and float(ref.max()) <= 1.0


def test_cli_flag_reaches_the_config() -> None:
    args = train_cli.build_train_parser().parse_args(["finetune", "--metric", "m", "--color-jitter", "--out", "x"])
    assert args.color_jitter is True
    assert train_cli.build_train_parser().parse_args(["finetune", "--metric", "m", "--out", "x"]).color_jitter is False
