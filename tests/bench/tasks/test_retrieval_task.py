"""The retrieval and kNN tasks: their names, scores and defaults, and batches that embed the gallery once."""

from __future__ import annotations

import torch

from lipsim_bench.evaluations.base import EmbeddingCache
from lipsim_bench.evaluations.gallery_batches import GalleryBatch
from lipsim_bench.tasks import get_task
from tests.bench.evaluations.gallery_toys import CountingL2, tiny_loader


def test_the_tasks_say_what_they_score() -> None:
    retrieval, knn = get_task("retrieval"), get_task("knn")
    assert (retrieval.item, retrieval.items, retrieval.score_name) == ("query", "queries", "Recall@1")
    assert (knn.item, knn.items, knn.score_name) == ("image", "images", "kNN accuracy")
    assert retrieval.default_evaluations == ("recall", "recall-apgd", "recall-certified")
    assert knn.default_evaluations == ("knn", "knn-apgd", "knn-certified")
    for task in (retrieval, knn):
        assert task.row_columns[0] == "id" and "agreement" in task.row_columns and "radius" in task.row_columns


def test_task_batches_are_gallery_batches_sharing_one_gallery_embedding() -> None:
    loader, metric, cache = tiny_loader(batch_size=4), CountingL2(), EmbeddingCache()
    task = get_task("retrieval")
    items = list(task.batches(metric, loader, torch.device("cpu"), "t", "toy", cache))
    assert all(isinstance(item, GalleryBatch) for item in items) and [len(i.e_query) for i in items] == [4, 4]
    again = list(get_task("knn").batches(metric, loader, torch.device("cpu"), "t", "toy", cache))
    assert metric.embedded == 12 + 8 and again[0].gallery.embeddings is items[0].gallery.embeddings
    rows = items[0].rows("recall", None, float("nan"), torch.ones(4))
    assert rows["agreement"].tolist() == [1.0] * 4 and task.score(rows, "test")[0]["score"] == 100.0
