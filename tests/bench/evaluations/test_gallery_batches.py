"""Gallery batches: the gallery is embedded once per metric, distances are the metric's own, bad plugins are one line."""

from __future__ import annotations

import pytest
import torch

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import EmbeddingCache
from lipsim_bench.evaluations.gallery_batches import (
    average_precision,
    distance_matrix,
    first_relevant_rank,
    gallery_batches,
)
from lipsim_bench.metrics import create_metric
from tests.bench.evaluations.gallery_toys import CountingL2, ProjectedL1, SquaredL2, tiny_loader

CPU = torch.device("cpu")


def _pairwise(metric, e_query, e_gallery) -> torch.Tensor:
    return torch.stack(
        [metric.distance(e_query[n : n + 1].expand_as(e_gallery), e_gallery) for n in range(len(e_query))]
    )


@pytest.mark.parametrize("name", ["pixel-l2", "lipsim-tiny", "toy-l2", "toy-l1", "toy-squared"])
def test_distance_matrix_is_the_metrics_own_distance(name: str) -> None:
    """Closed forms (cosine, l2) and the chunked fallback (an unknown kind; a kind its distance() does not compute)
    all equal metric.distance pair by pair, and the gradient reaches the queries."""
    metric = {"toy-l2": CountingL2, "toy-l1": ProjectedL1, "toy-squared": SquaredL2}.get(
        name, lambda: create_metric(name)
    )()
    data = tiny_loader().dataset
    with torch.no_grad():
        e_query, e_gallery = metric.embed(data.query_tensor), metric.embed(data.gallery_tensor)
    expected = _pairwise(metric, e_query, e_gallery).double()
    actual = distance_matrix(metric, e_query.clone().requires_grad_(), e_gallery)
    assert actual.shape == (8, 12) and actual.dtype == torch.float64
    torch.testing.assert_close(actual.detach(), expected, rtol=1e-6, atol=1e-6)
    leaf = e_query.clone().requires_grad_()
    distance_matrix(metric, leaf, e_gallery).sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0


def test_the_gallery_is_embedded_once_per_metric_and_shared_by_every_unit() -> None:
    loader, metric, cache = tiny_loader(), CountingL2(), EmbeddingCache()
    first = list(gallery_batches(metric, loader, CPU, "t", "toy", cache))
    assert metric.embedded == 12 + 8 and loader.dataset.reads == 12  # the gallery once, each query once
    again = list(gallery_batches(metric, loader, CPU, "t", "toy", cache))
    assert metric.embedded == 20 and loader.dataset.reads == 12  # a second unit reads everything from the cache
    assert all(a.gallery.embeddings is b.gallery.embeddings for a, b in zip(first, again))
    whole = torch.cat([b.distances for b in first])
    torch.testing.assert_close(
        whole,
        torch.cdist(loader.dataset.query_tensor.flatten(1).double(), loader.dataset.gallery_tensor.flatten(1).double()),
    )
    assert [b.distances.shape for b in first] == [(3, 12), (3, 12), (2, 12)]
    assert first[0].same_label.equal(first[0].relevant)  # relevance is the photo, the label too


def test_over_the_cache_budget_the_gallery_is_still_embedded_once() -> None:
    loader, metric, cache = tiny_loader(), CountingL2(), EmbeddingCache(budget_bytes=0)
    for _ in range(2):
        list(gallery_batches(metric, loader, CPU, "t", "toy", cache))
    assert loader.dataset.reads == 12 and metric.embedded == 12 + 2 * 8  # queries recomputed, the gallery kept


def test_rows_have_the_runners_columns() -> None:
    item = next(iter(gallery_batches(CountingL2(), tiny_loader(), CPU, "t", "toy")))
    rows = item.rows(
        "recall", None, float("nan"), torch.ones(3), rank=torch.tensor([1.0, 2.0, 3.0]), prediction=["a", "b", "c"]
    )
    assert list(rows.columns) == [
        "position",
        "evaluation",
        "norm",
        "eps",
        "group",
        "id",
        "label",
        "agreement",
        "rank",
        "prediction",
    ]
    assert rows["id"].tolist() == ["q0", "q1", "q2"] and rows["label"].tolist() == ["photo0", "photo1", "photo2"]


class _BadShape(CountingL2):
    def embed(self, x):
        return x.flatten(1)[:1]


class _NaNGallery(CountingL2):
    def embed(self, x):
        out = x.flatten(1).clone()
        if len(x) == 3 and out[0, 0] == self.poison:  # the gallery's first chunk
            out[1] = float("nan")
        return out


def test_a_plugins_bad_embedding_is_one_line_naming_it() -> None:
    with pytest.raises(BenchError, match=r"metric 'bad': embed returned shape \(1, 768\) for a batch of 3 images"):
        list(gallery_batches(_BadShape(), tiny_loader(), CPU, "t", "bad"))
    loader = tiny_loader()
    metric = _NaNGallery()
    metric.poison = loader.dataset.gallery_tensor[0, 0, 0, 0]
    with pytest.raises(BenchError) as info:
        list(gallery_batches(metric, loader, CPU, "t", "nan"))
    assert "\n" not in str(info.value) and "gallery image g1" in str(info.value)


def test_ranks_and_average_precision_by_hand() -> None:
    order = torch.tensor([[2, 0, 1, 3], [3, 2, 1, 0]])
    relevant = torch.tensor([[True, False, True, False], [False, False, False, False]])
    rank = first_relevant_rank(order, relevant)
    assert rank[0] == 1 and rank[1].isnan()  # item 2 is nearest; no relevant item: no rank
    ap = average_precision(order, relevant)
    assert ap.tolist() == pytest.approx([(1 + 2 / 2) / 2, 0.0])  # relevant at ranks 1 and 2
    ap = average_precision(torch.tensor([[1, 0, 3, 2]]), relevant[:1])
    assert ap.item() == pytest.approx((1 / 2 + 2 / 4) / 2)  # relevant at ranks 2 and 4
