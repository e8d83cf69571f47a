"""Batches of the gallery tasks (retrieval, kNN): each query batch with its clean embeddings and its distances to
the whole gallery.

The gallery is embedded once per metric (in chunks of the loader's batch size) and kept in the run's
:class:`~lipsim_bench.evaluations.base.EmbeddingCache`, so every unit and every batch of a run reads the same
tensors; past the cache's budget it is kept beside the metric (weakly) instead, never embedded again per batch.
Queries are embedded per batch and cached like 2AFC triplets, under keys that cannot meet the gallery's.

:func:`distance_matrix` is the metric's own distance between every query and every gallery item: the closed form
where ``distance_kind`` names one (and a probe shows ``distance`` computes it), else ``distance`` itself on
expanded pairs, in chunks.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import POSITION, EmbeddingCache, checked_call, loader_triplets

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

    from lipsim_bench.metrics import PerceptualMetric

#: Elements (pairs x embedding size) one call of a metric's ``distance`` gets when no closed form applies.
PAIR_CHUNK_ELEMENTS = 1 << 22
#: Pairs the closed-form probe compares with ``distance`` itself, and how near they must be (float32 embeddings).
PROBE_PAIRS, PROBE_RTOL, PROBE_ATOL = 8, 1e-4, 1e-6

#: The gallery of each metric when the run's cache could not hold it: (key, embeddings), one per metric.
_SPILLED: weakref.WeakKeyDictionary[Any, tuple[tuple, GalleryEmbeddings]] = weakref.WeakKeyDictionary()
#: Per metric and distance kind: whether its ``distance`` is the closed form its ``distance_kind`` names.
_FORMULA_OK: weakref.WeakKeyDictionary[Any, dict[str, bool]] = weakref.WeakKeyDictionary()


@dataclass
class GalleryEmbeddings:
    """The gallery's ids, labels and clean embeddings (CPU), computed once per metric."""

    ids: list[str]
    labels: list[str]
    embeddings: Tensor
    #: The gallery's images by index (the dataset's ``gallery_images``), for checks that need pixels.
    images: Callable[[Sequence[int]], Tensor] | None = None

    def label_codes(self, labels: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Integer codes of the gallery's labels (G,) and of ``labels`` (-1 for a label no gallery item has)."""
        codes = {label: i for i, label in enumerate(dict.fromkeys(self.labels))}
        gallery = torch.tensor([codes[label] for label in self.labels], dtype=torch.long)
        return gallery, torch.tensor([codes.get(label, -1) for label in labels], dtype=torch.long)


@dataclass
class GalleryBatch:
    """One batch of queries with their clean embeddings and clean distances to every gallery item."""

    batch: dict
    e_query: Tensor  # (N, ...) CPU
    gallery: GalleryEmbeddings
    distances: Tensor  # (N, G) float64 CPU

    @property
    def relevant(self) -> Tensor:
        """(N, G) bool: the gallery items relevant to each query."""
        return self.batch["relevant"].bool()

    @property
    def same_label(self) -> Tensor:
        """(N, G) bool: the gallery items whose label is the query's."""
        gallery, queries = self.gallery.label_codes(list(self.batch["label"]))
        return queries[:, None] == gallery[None, :]

    def order(self) -> Tensor:
        """(N, G) gallery indices nearest first; equal distances keep gallery order (deterministic)."""
        return torch.sort(self.distances, dim=1, stable=True).indices

    def rows(self, evaluation: str, norm: str | None, eps: float, agreement: Tensor, **extra: Any) -> pd.DataFrame:
        """Per-query rows: position, evaluation, norm, eps, group, id, label, agreement, then ``extra`` (tensors
        as float64 arrays, other sequences as they are)."""
        return pd.DataFrame(
            {
                POSITION: self.batch["index"].numpy(),  # dropped by the runner after merging shards
                "evaluation": evaluation,
                "norm": norm,
                "eps": eps,
                "group": list(self.batch["group"]),
                "id": list(self.batch["id"]),
                "label": list(self.batch["label"]),
                "agreement": agreement.double().numpy(),
                **{k: v.double().numpy() if isinstance(v, Tensor) else list(v) for k, v in extra.items()},
            }
        )


def distance_matrix(
    metric: PerceptualMetric, e_query: Tensor, e_gallery: Tensor, *, metric_name: str | None = None
) -> Tensor:
    """(N, G) float64 distances d(query_n, gallery_g), differentiable in ``e_query``: equal to
    ``metric.distance(e_query[n], e_gallery[g])`` (the closed form only where a probe shows ``distance`` computes it)."""
    name = metric_name or type(metric).__name__
    for form in _FORMS_OF_KIND.get(metric.distance_kind, ()):
        if _closed_form_matches(metric, form, e_query, e_gallery, name):
            return _CLOSED_FORMS[form](e_query, e_gallery)
    return _pairwise(metric, e_query, e_gallery, name)


def _cosine(e_query: Tensor, e_gallery: Tensor) -> Tensor:
    """1 - cos, as ``torch.nn.functional.cosine_similarity`` computes it (norm product clamped at 1e-8)."""
    q, g = e_query.flatten(1).double(), e_gallery.flatten(1).double()
    norms = (q * q).sum(1)[:, None] * (g * g).sum(1)[None, :]
    return 1.0 - (q @ g.T) / norms.clamp_min(1e-16).sqrt()


def _l2(e_query: Tensor, e_gallery: Tensor) -> Tensor:
    """Euclidean distance, computed pair by pair (no ||a||^2 + ||b||^2 - 2ab cancellation); under an attack's
    gradient from the expanded square (cdist's backward on CPU costs several times the embedding's; double precision
    keeps the cancellation far below any decision, and the attack's outcome is recomputed exactly)."""
    if _attacked(e_query):
        return _expanded_square(e_query, e_gallery).clamp_min(1e-300).sqrt()
    q, g = e_query.flatten(1).double(), e_gallery.flatten(1).double()
    return torch.cdist(q, g, compute_mode="donot_use_mm_for_euclid_dist")


def _squared_l2(e_query: Tensor, e_gallery: Tensor) -> Tensor:
    """Squared Euclidean distance: LPIPS and ST-LPIPS (``distance_kind`` "l2": the same decisions as the distance)."""
    return _expanded_square(e_query, e_gallery) if _attacked(e_query) else _l2(e_query, e_gallery).square()


def _attacked(e_query: Tensor) -> bool:
    return e_query.requires_grad and torch.is_grad_enabled()


def _expanded_square(e_query: Tensor, e_gallery: Tensor) -> Tensor:
    """||q||^2 + ||g||^2 - 2 <q, g> in float64, clamped at 0: one matrix product forward and backward."""
    q, g = e_query.flatten(1).double(), e_gallery.flatten(1).double()
    return ((q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * (q @ g.T)).clamp_min(0.0)


_CLOSED_FORMS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "cosine": _cosine,
    "l2": _l2,
    "squared-l2": _squared_l2,
}
#: The closed forms each distance kind may stand for, tried in order: LPIPS-style metrics declare "l2" (their
#: decisions are the Euclidean distance's) while their ``distance`` is its square.
_FORMS_OF_KIND: dict[str, tuple[str, ...]] = {"cosine": ("cosine",), "l2": ("l2", "squared-l2")}


def _closed_form_matches(metric: PerceptualMetric, kind: str, e_query: Tensor, e_gallery: Tensor, name: str) -> bool:
    """Whether ``metric.distance`` is the closed form ``kind`` on a few pairs (once per metric and form)."""
    known = _FORMULA_OK.setdefault(metric, {})
    if kind not in known:
        k = min(PROBE_PAIRS, len(e_query))
        with torch.no_grad():
            q = e_query[:k].detach()
            g = e_gallery[torch.arange(k, device=e_gallery.device) % len(e_gallery)].detach()
            actual = checked_call(name, "distance", lambda: metric.distance(q, g), k).double().cpu()
            expected = _CLOSED_FORMS[kind](q, g).diagonal().cpu()
        known[kind] = bool(torch.allclose(actual, expected, rtol=PROBE_RTOL, atol=PROBE_ATOL))
    return known[kind]


def _pairwise(metric: PerceptualMetric, e_query: Tensor, e_gallery: Tensor, name: str) -> Tensor:
    """The metric's ``distance`` on every (query, gallery) pair, a few queries per call."""
    n, g = len(e_query), len(e_gallery)
    size = max(1, e_gallery[0].numel()) if g else 1
    per_call = max(1, PAIR_CHUNK_ELEMENTS // max(1, g * size))
    parts = []
    for start in range(0, n, per_call):
        q = e_query[start : start + per_call]
        a = q.repeat_interleave(g, dim=0)
        b = e_gallery.repeat(len(q), *[1] * (e_gallery.dim() - 1))
        out = checked_call(name, "distance", lambda: metric.distance(a, b), len(a))
        parts.append(out.double().view(len(q), g))
    return torch.cat(parts) if parts else e_query.new_zeros((0, g), dtype=torch.float64)


def gallery_batches(
    metric: PerceptualMetric,
    loader: DataLoader,
    device: torch.device,
    desc: str,
    metric_name: str,
    cache: EmbeddingCache | None = None,
) -> Iterator[GalleryBatch]:
    """The loader's query batches with their embeddings and distances to the gallery (embedded once per metric)."""
    if cache is not None:
        cache.bind(metric)
    gallery = gallery_embeddings(metric, loader, device, desc, metric_name, cache)
    on_device: Tensor | None = None
    with tqdm(total=loader_triplets(loader), desc=desc, unit="query", leave=False, dynamic_ncols=True) as bar:
        for batch in loader:
            key = ("query", *(int(i) for i in batch["index"]))
            stored = cache.get(key) if cache is not None else None  # type: ignore[arg-type]
            if stored is None:
                if on_device is None:
                    on_device = gallery.embeddings.to(device)
                stored = _embed_queries(metric, batch, on_device, device, metric_name)
                if cache is not None:
                    cache.put(key, stored)  # type: ignore[arg-type]
            yield GalleryBatch(batch, stored[0], gallery, stored[1])
            bar.update(len(batch["id"]))


def gallery_embeddings(
    metric: PerceptualMetric,
    loader: DataLoader,
    device: torch.device,
    desc: str,
    metric_name: str,
    cache: EmbeddingCache | None = None,
) -> GalleryEmbeddings:
    """The gallery of ``loader.dataset`` embedded by ``metric``: from the cache, or computed once and kept there."""
    dataset = loader.dataset
    key = ("gallery", getattr(dataset, "image_size", None), *((r.id, str(r.path)) for r in dataset.gallery))
    if cache is not None:
        cache.bind(metric)
        found = cache.get(key)  # type: ignore[arg-type]
        if found is not None:
            return GalleryEmbeddings(
                list(dataset.gallery_ids), list(dataset.gallery_labels), found[0], dataset.gallery_images
            )
    spilled = _SPILLED.get(metric)
    if spilled is not None and spilled[0] == key:
        return spilled[1]
    embeddings = _embed_gallery(metric, dataset, _batch_size(loader), device, desc, metric_name)
    gallery = GalleryEmbeddings(
        list(dataset.gallery_ids), list(dataset.gallery_labels), embeddings, dataset.gallery_images
    )
    if cache is not None:
        cache.put(key, (embeddings,))  # type: ignore[arg-type]
        if cache.get(key) is not None:  # type: ignore[arg-type]
            return gallery
    _SPILLED[metric] = (key, gallery)  # over the cache's budget (or no cache): kept beside the metric
    return gallery


def _batch_size(loader: DataLoader) -> int:
    """The loader's batch size (a run's loader has a batch sampler, which holds it)."""
    size = getattr(loader.batch_sampler, "batch_size", None) or loader.batch_size
    return int(size) if isinstance(size, int) and size > 0 else 64


def _embed_gallery(
    metric: PerceptualMetric, dataset: Any, chunk: int, device: torch.device, desc: str, metric_name: str
) -> Tensor:
    """Every gallery image embedded, ``chunk`` at a time; one line naming the first item whose embedding is not finite."""
    count = len(dataset.gallery_ids)
    if count == 0:
        raise BenchError(f"dataset {dataset.name!r} has an empty gallery; a retrieval or kNN task needs gallery images")
    parts = []
    with tqdm(total=count, desc=f"{desc} gallery", unit="image", leave=False, dynamic_ncols=True) as bar:
        for start in range(0, count, chunk):
            indices = list(range(start, min(count, start + chunk)))
            images = dataset.gallery_images(indices).to(device)
            with torch.no_grad():
                out = checked_call(metric_name, "embed", lambda: metric.embed(images), len(indices))
            parts.append(out.detach().cpu())
            bar.update(len(indices))
    embeddings = torch.cat(parts)
    bad = ~torch.isfinite(embeddings.flatten(1)).all(dim=1)
    if bad.any():
        first = dataset.gallery_ids[int(bad.nonzero()[0])]
        raise BenchError(
            f"metric {metric_name!r} gave a non-finite embedding (NaN/inf) on gallery image {first}; check its weights"
        )
    return embeddings


def _embed_queries(
    metric: PerceptualMetric, batch: dict, e_gallery: Tensor, device: torch.device, metric_name: str
) -> tuple[Tensor, Tensor]:
    """The batch's query embeddings and their (N, G) distances to the gallery, checked finite."""
    query = batch["query"].to(device)
    with torch.no_grad():
        e_query = checked_call(metric_name, "embed", lambda: metric.embed(query), len(query))
        distances = distance_matrix(metric, e_query, e_gallery, metric_name=metric_name).cpu()
    bad = ~torch.isfinite(distances).all(dim=1)
    if bad.any():
        first = batch["id"][int(bad.nonzero()[0])]
        raise BenchError(
            f"metric {metric_name!r} gave a non-finite distance (NaN/inf) on query {first}; check its weights"
        )
    return e_query.cpu(), distances


def check_k(evaluation: str, k: int, gallery: GalleryEmbeddings) -> int:
    """A neighbour count between 1 and the gallery's size, or one line naming the option."""
    if not 1 <= k <= len(gallery.ids):
        raise BenchError(
            f"{evaluation}.k must be between 1 and the gallery's size ({len(gallery.ids)}), got {k}; "
            f"set --set {evaluation}.k=N"
        )
    return k


def first_relevant_rank(order: Tensor, relevant: Tensor) -> Tensor:
    """(N,) 1-based rank of each query's nearest relevant item (NaN where none is relevant)."""
    ranked = torch.gather(relevant, 1, order)
    found = ranked.any(dim=1)
    first = ranked.double().argmax(dim=1).double() + 1.0
    return torch.where(found, first, torch.full_like(first, math.nan))


def average_precision(order: Tensor, relevant: Tensor) -> Tensor:
    """(N,) average precision of each query's ranking (0 where none is relevant)."""
    ranked = torch.gather(relevant, 1, order).double()
    hits = ranked.cumsum(dim=1)
    positions = torch.arange(1, ranked.shape[1] + 1, dtype=torch.float64)
    total = ranked.sum(dim=1)
    return torch.where(total > 0, (ranked * hits / positions).sum(dim=1) / total.clamp_min(1), torch.zeros_like(total))
