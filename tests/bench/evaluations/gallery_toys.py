"""A tiny gallery set for the gallery tests, as the real :class:`GalleryDataset` over PNG files written once per
session: 4 "photos" x 3 views in the gallery, 8 queries that are noisy views (relevant: the views of their photo, label:
the photo; the photos are alike, so some queries miss), and toy metrics for the distance paths."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader

from lipsim_bench.datasets.gallery import GalleryDataset, GalleryRecord, QueryRecord
from lipsim_bench.metrics import PerceptualMetric

PHOTOS, VIEWS, QUERIES, SIZE = 4, 3, 8, 16


def _save(path: Path, image: Tensor) -> None:
    Image.fromarray((image.permute(1, 2, 0) * 255).round().byte().numpy().astype(np.uint8)).save(path)


@functools.lru_cache(maxsize=1)
def _records() -> tuple[list[QueryRecord], list[GalleryRecord]]:
    """The PNG files (written once per test session) and their records."""
    root = Path(tempfile.mkdtemp(prefix="tiny-gallery-"))
    atexit.register(shutil.rmtree, root, True)
    generator = torch.Generator().manual_seed(0)
    base = 0.5 + 0.02 * torch.randn(PHOTOS, 3, SIZE, SIZE, generator=generator)  # photos alike: some misses
    views = base.repeat_interleave(VIEWS, 0) + 0.1 * torch.randn(PHOTOS * VIEWS, 3, SIZE, SIZE, generator=generator)
    photo = torch.arange(QUERIES) % PHOTOS
    queries = base[photo] + 0.15 * torch.randn(QUERIES, 3, SIZE, SIZE, generator=generator)
    gallery = []
    for i, image in enumerate(views.clamp(0, 1)):
        _save(root / f"g{i}.png", image)
        gallery.append(GalleryRecord(f"g{i}", root / f"g{i}.png", f"photo{i // VIEWS}"))
    query_records = []
    for i, image in enumerate(queries.clamp(0, 1)):
        _save(root / f"q{i}.png", image)
        label = f"photo{int(photo[i])}"
        relevant = tuple(g.id for g in gallery if g.label == label)
        query_records.append(QueryRecord(f"q{i}", root / f"q{i}.png", label, relevant))
    return query_records, gallery


class TinyGallery(GalleryDataset):
    """The tiny set; counts the gallery images read."""

    def __init__(self) -> None:
        queries, gallery = _records()
        super().__init__("tiny-gallery", "test", queries, gallery, None)
        self.reads = 0

    def gallery_images(self, indices: Sequence[int]) -> Tensor:
        self.reads += len(indices)
        return super().gallery_images(indices)

    @functools.cached_property
    def query_tensor(self) -> Tensor:
        return torch.stack([self[i]["query"] for i in range(len(self))])  # type: ignore[misc]

    @functools.cached_property
    def gallery_tensor(self) -> Tensor:
        return torch.stack([self._image(g.path) for g in self.gallery])


def tiny_loader(batch_size: int = 3) -> DataLoader:
    return DataLoader(TinyGallery(), batch_size=batch_size, shuffle=False)


class CountingL2(PerceptualMetric):
    """Pixel l2 with a declared (plugin) bound of 1, counting the images it embeds."""

    distance_kind = "l2"
    lipschitz = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    def embed(self, x: Tensor) -> Tensor:
        self.embedded += len(x)
        return x.flatten(1)

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        return (e_a - e_b).flatten(1).norm(dim=1)


class ProjectedL1(PerceptualMetric):
    """An unknown distance kind (l1 of a random projection): only ``distance`` itself knows it."""

    distance_kind = "l1"

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight", torch.randn(3 * 16 * 16, 6, generator=torch.Generator().manual_seed(1)))

    def embed(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.weight

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        return (e_a - e_b).abs().sum(dim=1)


class SquaredL2(CountingL2):
    """Declares ``l2`` but computes the squared distance: the closed form must not be used for it."""

    lipschitz = None

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        return (e_a - e_b).flatten(1).square().sum(dim=1)
