"""The k nearest gallery items of each query: exact search by brute force in torch, or through FAISS where it is
installed (``pip install lipsim-bench[faiss]``) and the gallery is large enough for it to pay.

Both are exact (FAISS's flat indexes, no approximation): the same items come back, in the same order, up to
ties (items whose distances agree to float32 rounding may swap). The distances returned are recomputed in
float64 from the chosen pairs either way, so they do not depend on the backend, and the order is by
(distance, gallery index).

Where FAISS takes over: ``benchmarks/retrieval_search.py`` times both at 512 dimensions with 100 queries. On
the shared 2-core CPU it was measured on, exact FAISS never did (about even at 1e3 gallery items, 1.4 to 3.2
times slower than torch from 1e4 to 1e6: both are one matrix product, and torch's BLAS was the faster): ``auto`` uses FAISS only from
:data:`FAISS_MIN_GALLERY` items, None until a machine shows a size where it pays. FAISS's speed-ups beyond this
come from approximate indexes (IVF, HNSW), which may return other items, so a certificate cannot rest on them.
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from torch import Tensor

from lipsim_bench.errors import BenchError

#: Gallery size from which ``backend="auto"`` uses FAISS (when installed); None: never. Measured by
#: benchmarks/retrieval_search.py on 2 CPU cores (faiss-cpu 1.15.1, torch's own BLAS): exact FAISS was slower than
#: the torch search at every size from 1e3 to 1e6 items (dim 512, 100 queries), so ``auto`` keeps torch.
FAISS_MIN_GALLERY: int | None = None
#: Scores per block of the torch search (queries x gallery items): bounds its memory to about 64 MB.
BLOCK_SCORES = 1 << 24
DISTANCE_KINDS = ("cosine", "l2")
BACKENDS = ("auto", "torch", "faiss")


def faiss_available() -> bool:
    """Whether FAISS can be imported (without importing it: it is slow to load)."""
    return importlib.util.find_spec("faiss") is not None


def nearest(
    e_query: Tensor, e_gallery: Tensor, k: int, distance_kind: str, backend: str = "auto"
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest gallery items of each query: ``(distances, indices)``, both ``(N, k)`` on the CPU,
    distances float64 (1 - cosine or Euclidean, as the metric's ``distance_kind``), nearest first.

    ``backend``: ``torch`` (brute force), ``faiss`` (refused when not installed) or ``auto`` (FAISS when it is
    installed and the gallery has at least :data:`FAISS_MIN_GALLERY` items, torch otherwise).
    """
    q, g = check_inputs(e_query, e_gallery, k, distance_kind, backend)
    use_faiss = backend == "faiss" or (
        backend == "auto" and FAISS_MIN_GALLERY is not None and len(g) >= FAISS_MIN_GALLERY and faiss_available()
    )
    indices = faiss_indices(q, g, k, distance_kind) if use_faiss else torch_indices(q, g, k, distance_kind)
    return ordered(q, g, indices, distance_kind)


def check_inputs(e_query: Tensor, e_gallery: Tensor, k: int, distance_kind: str, backend: str) -> tuple[Tensor, Tensor]:
    """The flattened CPU embeddings, or one line naming what is wrong."""
    if distance_kind not in DISTANCE_KINDS:
        raise BenchError(f"nearest: distance kind {distance_kind!r} is not one of {', '.join(DISTANCE_KINDS)}")
    if backend not in BACKENDS:
        raise BenchError(f"nearest: backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "faiss" and not faiss_available():
        raise BenchError("nearest: FAISS is not installed; pip install 'lipsim-bench[faiss]' or use backend='torch'")
    q, g = e_query.detach().flatten(1).cpu(), e_gallery.detach().flatten(1).cpu()
    if q.shape[1] != g.shape[1]:
        raise BenchError(
            f"nearest: queries have {q.shape[1]} dimensions but the gallery {g.shape[1]}; embed both alike"
        )
    if not 1 <= k <= len(g):
        raise BenchError(f"nearest: k={k} must be between 1 and the gallery's {len(g)} items")
    return q, g


def torch_indices(q: Tensor, g: Tensor, k: int, distance_kind: str) -> Tensor:
    """Brute force, block by block over the gallery, keeping the running k best (smallest score)."""
    q, g = q.float(), g.float()
    if distance_kind == "cosine":
        q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
    best_score = torch.empty(len(q), 0)
    best_index = torch.empty(len(q), 0, dtype=torch.long)
    for start in range(0, len(g), block_size(len(q))):
        block = g[start : start + block_size(len(q))]
        if distance_kind == "cosine":
            score = -(q @ block.T)  # the larger the cosine, the nearer
        else:  # squared distance up to the query's own norm, which does not change the order
            score = (block * block).sum(dim=1)[None, :] - 2.0 * (q @ block.T)
        top = score.topk(min(k, len(block)), dim=1, largest=False)
        score = torch.cat([best_score, top.values], dim=1)  # the running best and the block's: at most 2k
        index = torch.cat([best_index, top.indices + start], dim=1)
        keep = score.topk(min(k, score.shape[1]), dim=1, largest=False).indices
        best_score, best_index = score.gather(1, keep), index.gather(1, keep)
    return best_index


def block_size(queries: int) -> int:
    """Gallery items per block of the torch search, for ``queries`` queries."""
    return max(1, BLOCK_SCORES // max(1, queries))


def faiss_indices(q: Tensor, g: Tensor, k: int, distance_kind: str) -> Tensor:
    """FAISS's exact flat index: inner product on unit vectors for cosine, squared l2 otherwise."""
    import faiss  # optional: lipsim-bench[faiss]

    qn = q.float().contiguous().numpy().copy()
    gn = g.float().contiguous().numpy().copy()
    if distance_kind == "cosine":
        faiss.normalize_L2(qn)
        faiss.normalize_L2(gn)
        index = faiss.IndexFlatIP(gn.shape[1])
    else:
        index = faiss.IndexFlatL2(gn.shape[1])
    index.add(gn)
    _, found = index.search(qn, k)
    return torch.from_numpy(found).long()


def ordered(q: Tensor, g: Tensor, indices: Tensor, distance_kind: str) -> tuple[Tensor, Tensor]:
    """float64 distances of the chosen pairs, sorted by (distance, gallery index): the same for both backends."""
    chosen = g[indices].double()  # (N, k, D): only the chosen rows in float64
    qd = q.double()[:, None, :]
    if distance_kind == "cosine":  # as cosine_similarity: the norm product clamped at 1e-8
        norms = (qd.norm(dim=2) * chosen.norm(dim=2)).clamp_min(1e-8)
        distances = 1.0 - (qd * chosen).sum(dim=2) / norms
    else:
        distances = (qd - chosen).norm(dim=2)
    by_index = indices.argsort(dim=1, stable=True)  # ties in distance: the lower gallery index first
    indices, distances = indices.gather(1, by_index), distances.gather(1, by_index)
    by_distance = distances.argsort(dim=1, stable=True)
    return distances.gather(1, by_distance), indices.gather(1, by_distance)
