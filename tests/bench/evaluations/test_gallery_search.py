"""``nearest``: the k nearest gallery items by brute force in torch and through FAISS, the same items both ways,
and both the same as sorting the metric's full distance matrix."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lipsim_bench.evaluations.gallery_search as search
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.gallery_search import faiss_available, nearest

needs_faiss = pytest.mark.skipif(
    not faiss_available(), reason="faiss-cpu is not installed (pip install 'lipsim-bench[faiss]')"
)


def full_order(q: torch.Tensor, g: torch.Tensor, kind: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: every distance in float64, sorted by (distance, gallery index)."""
    q, g = q.flatten(1).double(), g.flatten(1).double()
    d = 1 - F.normalize(q, dim=1) @ F.normalize(g, dim=1).T if kind == "cosine" else torch.cdist(q, g)
    order = d.argsort(dim=1, stable=True)[:, :k]
    return d.gather(1, order), order


def embeddings(seed: int, queries: int = 7, gallery: int = 300, dim: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(queries, 2, dim // 2, generator=gen), torch.randn(gallery, 2, dim // 2, generator=gen)


@pytest.mark.parametrize("kind", ["cosine", "l2"])
def test_torch_search_is_the_sorted_distance_matrix_across_blocks(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    q, g = embeddings(0)
    monkeypatch.setattr(search, "BLOCK_SCORES", 7 * 41)  # 41 gallery items per block: the running best is merged
    distances, indices = nearest(q, g, 5, kind, backend="torch")
    expected_d, expected_i = full_order(q, g, kind, 5)
    assert torch.equal(indices, expected_i)
    torch.testing.assert_close(distances, expected_d, rtol=1e-12, atol=1e-12)
    assert distances.dtype == torch.float64 and indices.dtype == torch.long


@needs_faiss
@pytest.mark.parametrize("kind", ["cosine", "l2"])
def test_faiss_returns_the_same_items_as_torch(kind: str) -> None:
    q, g = embeddings(1)
    t = nearest(q, g, 10, kind, backend="torch")
    f = nearest(q, g, 10, kind, backend="faiss")
    assert torch.equal(t[1], f[1])
    assert torch.equal(t[0], f[0])  # recomputed from the same pairs in float64: equal, not just close


@needs_faiss
def test_ties_come_back_in_gallery_order_both_ways() -> None:
    q, g = embeddings(2, gallery=20)
    g = torch.cat([g, g[:5]])  # items 20..24 duplicate 0..4: exact ties
    for backend in ("torch", "faiss"):
        _, indices = nearest(q, g, 25, "l2", backend=backend)
        for row in indices.tolist():
            for twin in range(5):
                assert row.index(twin) < row.index(twin + 20)


def test_auto_keeps_torch_below_the_measured_size(monkeypatch: pytest.MonkeyPatch) -> None:
    called = []
    monkeypatch.setattr(search, "faiss_indices", lambda *a: called.append(a) or torch.zeros(1, 1, dtype=torch.long))
    q, g = embeddings(3, queries=1, gallery=10)
    monkeypatch.setattr(search, "FAISS_MIN_GALLERY", None)
    nearest(q, g, 1, "cosine")
    monkeypatch.setattr(search, "FAISS_MIN_GALLERY", 11)
    nearest(q, g, 1, "cosine")
    assert called == []
    monkeypatch.setattr(search, "FAISS_MIN_GALLERY", 10)
    monkeypatch.setattr(search, "faiss_available", lambda: True)
    nearest(q, g, 1, "cosine")
    assert len(called) == 1


def test_bad_input_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    q, g = embeddings(4, gallery=5)
    with pytest.raises(BenchError, match="k=6 must be between 1 and the gallery's 5 items"):
        nearest(q, g, 6, "cosine")
    with pytest.raises(BenchError, match="distance kind 'dot'"):
        nearest(q, g, 1, "dot")
    with pytest.raises(BenchError, match="queries have 3 dimensions but the gallery 24"):
        nearest(torch.zeros(1, 3), g, 1, "l2")
    monkeypatch.setattr(search, "faiss_available", lambda: False)
    with pytest.raises(BenchError, match=r"FAISS is not installed; pip install 'lipsim-bench\[faiss\]'"):
        nearest(q, g, 1, "l2", backend="faiss")
