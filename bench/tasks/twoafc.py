"""The 2AFC task: a triplet (ref, x0, x1) with the fraction ``p`` of people who judged x1 closer; the score is
the agreement with people (the LipSim and DreamSim papers' "2AFC score")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from lipsim_bench.evaluations.base import EmbeddedBatch, EmbeddingCache, embedded_batches
from lipsim_bench.tasks.base import Task, register_task

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

    from lipsim_bench.metrics import PerceptualMetric


@register_task
class TwoAFC(Task):
    """Triplets in, agreement with people's majority (fractional votes: their share) out."""

    name = "2afc"
    item, items = "triplet", "triplets"
    score_name = "2AFC score"
    description = "two-alternative forced choice: which of x0, x1 is closer to ref (NIGHT, BAPPS, sample)"
    default_evaluations: ClassVar[tuple[str, ...]] = ("natural", "certified", "apgd")
    row_columns: ClassVar[tuple[str, ...]] = ("id", "p", "d0", "d1", "agreement", "correct")

    def batches(
        self,
        metric: PerceptualMetric,
        loader: DataLoader,
        device: torch.device,
        desc: str,
        metric_name: str,
        cache: EmbeddingCache | None = None,
    ) -> Iterator[EmbeddedBatch]:
        return embedded_batches(metric, loader, device, desc, metric_name, cache)
