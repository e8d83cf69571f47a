"""The gallery tasks: ``retrieval`` (a query ranks a gallery; scored by Recall@1, mAP, their attacked and certified
forms) and ``knn`` (an image takes the label of its nearest gallery items; scored by kNN accuracy). Both embed the
gallery once per metric and each batch of queries against it (:mod:`lipsim_bench.evaluations.gallery_batches`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from lipsim_bench.evaluations.base import EmbeddingCache
from lipsim_bench.evaluations.gallery_batches import GalleryBatch, gallery_batches
from lipsim_bench.tasks.base import Task, register_task

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

    from lipsim_bench.metrics import PerceptualMetric


class GalleryTask(Task):
    """A task whose items are queries against one gallery, embedded once per metric."""

    target = "query"  # attacks and certificates move the query; the gallery is the defender's, fixed

    def batches(
        self,
        metric: PerceptualMetric,
        loader: DataLoader,
        device: torch.device,
        desc: str,
        metric_name: str,
        cache: EmbeddingCache | None = None,
    ) -> Iterator[GalleryBatch]:
        return gallery_batches(metric, loader, device, desc, metric_name, cache)


@register_task
class Retrieval(GalleryTask):
    """Queries in, the share whose nearest gallery item is relevant out."""

    name = "retrieval"
    item, items = "query", "queries"
    score_name = "Recall@1"
    description = "image retrieval: a query's nearest gallery items should be its relevant ones (Recall@k, mAP)"
    default_evaluations: ClassVar[tuple[str, ...]] = ("recall", "recall-apgd", "recall-certified")
    row_columns: ClassVar[tuple[str, ...]] = ("id", "label", "agreement", "rank", "ap", "top1", "radius")


@register_task
class Knn(GalleryTask):
    """Labelled images in, the share the vote of their nearest gallery items labels right out."""

    name = "knn"
    item, items = "image", "images"
    score_name = "kNN accuracy"
    description = "k-nearest-neighbour classification against a labelled gallery"
    default_evaluations: ClassVar[tuple[str, ...]] = ("knn", "knn-apgd", "knn-certified")
    row_columns: ClassVar[tuple[str, ...]] = ("id", "label", "prediction", "agreement", "top1", "radius")
