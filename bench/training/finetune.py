"""Step 2 of LipSim's training: fine-tune a metric on 2AFC judgments with a hinge loss.

``L = mean max(0, m - y (d0 - d1))`` with ``d_i = distance(embed(ref), embed(x_i))`` and ``y = +1``
when people found x1 closer (p > 0.5; d1 < d0 wanted), ``y = -1`` when they found x0 closer.
The paper writes ``y = 2 round(p) - 1`` and a sum; we average over the batch (so the lr does not
depend on the batch size; the paper's lr 0.01 at batch 32 with a sum is a larger step than ours).
Triplets with p == 0.5 are dropped: ``round(0.5)`` is 0 under round-half-to-even (Python, torch),
which would silently label every tie "x0 closer"; a tie carries no preference to learn from.

Augmentation: one random horizontal flip per triplet, applied to all three images (optionally a
random quarter turn too), so the judgment stays valid. ``color_jitter`` adds the distillation's
photometric view (colour jitter 0.4/0.4/0.2/0.1 with p 0.8, grayscale p 0.2) to each image on its own:
the sample set's positives are jittered views and its negatives the l2-nearest other content, so a
metric should ignore colour and brightness, not match them. ``noise_sigma`` > 0 then adds Gaussian noise
to the reference only: randomized smoothing perturbs only the reference (x0 and x1 stay clean), so
that is the input distribution a metric for smoothing must learn to judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lipsim_bench.datasets import TwoAFCDataset
from lipsim_bench.errors import BenchError
from lipsim_bench.training.augment import ColorJitter, gaussian_noise, random_grayscale, triplet_flip
from lipsim_bench.training.checkpoints import check_out_dir
from lipsim_bench.training.config import ModelArg, TrainConfig, TrainResult, TrainTask
from lipsim_bench.training.evaluate import metric_distance
from lipsim_bench.training.loop import build_module, require_embed, train, trainable_parameters


@dataclass(kw_only=True)
class FinetuneConfig(TrainConfig):
    """Fine-tuning options. The paper: NIGHT train (votes >= 6), 1 epoch, batch 32, Adam lr 0.01, m = 0.2 or 0.5.

    The default lr is 1e-3, which suits small models; use ``lr=0.01`` to follow the paper.
    """

    epochs: int = 1
    batch_size: int = 32
    margin: float = 0.5
    flip: bool = True
    rot90: bool = False
    color_jitter: bool = False

    def validate(self) -> None:
        super().validate()
        if not (0 <= self.margin < float("inf")):
            raise BenchError(f"--margin must be a finite number >= 0, got {self.margin}")


def decided_triplets(dataset: TwoAFCDataset) -> tuple[TwoAFCDataset, int]:
    """The split without its p == 0.5 triplets, and how many were dropped."""
    kept = [r for r in dataset.records if r.p != 0.5]
    if not kept:
        raise BenchError(
            f"{dataset.name}/{dataset.split}: every triplet has p = 0.5; nothing to learn a preference from"
        )
    return TwoAFCDataset(dataset.name, dataset.split, kept, dataset.image_size), len(dataset.records) - len(kept)


def hinge_loss(d0: Tensor, d1: Tensor, p: Tensor, margin: float) -> Tensor:
    """``mean max(0, m - y (d0 - d1))``, ``y = +1`` if p > 0.5 else -1 (callers drop p == 0.5)."""
    y = torch.where(p > 0.5, 1.0, -1.0).to(d0.dtype)
    return torch.relu(margin - y * (d0 - d1)).mean()


class FinetuneStep:
    """Loss of one batch of triplets: augment, embed all three images in one pass, hinge."""

    def __init__(
        self, margin: float, flip: bool, rot90: bool, noise_sigma: float = 0.0, color_jitter: bool = False
    ) -> None:
        self.margin, self.flip, self.rot90, self.noise_sigma, self.color_jitter = (
            margin,
            flip,
            rot90,
            noise_sigma,
            color_jitter,
        )

    def __call__(
        self, model: nn.Module, batch: Any, generator: torch.Generator, device: torch.device
    ) -> tuple[Tensor, int]:
        ref, x0, x1 = (batch[k].to(device, non_blocking=True) for k in ("ref", "x0", "x1"))
        ref, x0, x1 = triplet_flip(ref, x0, x1, generator, flip=self.flip, rot90=self.rot90)
        n = ref.shape[0]
        if self.color_jitter:  # each image on its own, in one batched call
            ref, x0, x1 = random_grayscale(ColorJitter()(torch.cat((ref, x0, x1)), generator), generator).split(n)
        ref = gaussian_noise(ref, self.noise_sigma, generator)
        e_ref, e0, e1 = model.embed(torch.cat((ref, x0, x1))).split(n)
        d0, d1 = metric_distance(model, e_ref, e0), metric_distance(model, e_ref, e1)
        return hinge_loss(d0, d1, batch["p"].to(device), self.margin), n


def finetune(
    model: ModelArg,
    dataset: TwoAFCDataset,
    config: FinetuneConfig,
    *,
    eval_set: TwoAFCDataset | None = None,
    meta: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Fine-tune ``model`` (a trainable metric with ``embed``/``distance``, or a factory) on a 2AFC split."""
    config.validate()
    check_out_dir(config)
    metric = build_module(model, config.seed)
    require_embed(metric, "metric")
    trainable_parameters(metric)
    dataset.check_files()
    train_set, dropped = decided_triplets(dataset)
    task = TrainTask(
        kind="finetune",
        model=metric,
        dataset=train_set,
        step_loss=FinetuneStep(config.margin, config.flip, config.rot90, config.noise_sigma, config.color_jitter),
        config=config,
        identity={
            "metric": type(metric).__qualname__,
            "dataset": dataset.name,
            "split": dataset.split,
            "n_triplets": len(train_set),
            "n_dropped_p_half": dropped,
        },
        eval_set=eval_set,
        meta=dict(meta or {}),
    )
    return train(task)
