"""The bundled retrieval and kNN sets, ``sample-retrieval`` and ``sample-knn``: built offline, deterministically, from
the sample set's photographs, cached like ``sample`` (rebuilt when the recipe changes or a file was altered).

``sample-retrieval`` (CSV layout, :mod:`~lipsim_bench.datasets.gallery_csv`) uses only the HELD-OUT photos (the
2AFC test sources, chelsea and motorcycle_left), never seen by the bundled trained metrics: 80 photos (crop places,
:mod:`~lipsim_bench.datasets.gallery_draw`); 48 of them, evenly spread, are queried: view 0 is the query, views 1-3
its relevant gallery items; the other 32 are distractors with 2 gallery views each. 48 queries, 208 gallery images.

``sample-knn`` (labelled folders, :mod:`~lipsim_bench.datasets.gallery_folder`): the label is the source photo. Two
held-out photos make only two classes, so it uses all 18 sample photos (the 2 test and the 16 train sources; the
bundled trained metrics have seen the train photos' content): 12 photos a class, 3 of them (evenly spread) queries,
9 gallery images, one view each. 54 queries, 162 gallery images, 18 classes.

Any change to these rules must bump :data:`GALLERY_SAMPLE_VERSION` (the manifest's ``recipe`` catches edited
constants, not edited code).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import zlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from lipsim_bench.datasets.base import register_dataset
from lipsim_bench.datasets.gallery import GalleryDataset
from lipsim_bench.datasets.gallery_csv import csv_gallery_dataset
from lipsim_bench.datasets.gallery_draw import VIEW_SHIFT, Photo, View, draw_photos, spread, view_extents
from lipsim_bench.datasets.gallery_folder import folder_gallery_dataset
from lipsim_bench.datasets.sample.check import changed_file
from lipsim_bench.datasets.sample.photos import Source, load_sources
from lipsim_bench.datasets.sample.png import png_bytes
from lipsim_bench.datasets.sample.recipe import TEST_SOURCES, TRAIN_SOURCES
from lipsim_bench.io import build_folder, sha256_file
from lipsim_bench.locations import cache_root

GALLERY_SAMPLE_VERSION = "v1"
SIZE, SEED = 64, 0
#: stream tags: the sample set's splits use 0 (train), 1 (test), 2 (val)
RETRIEVAL_TAG, KNN_TAG = 3, 4
RETRIEVAL = {"query_photos": 48, "gallery_views": 3, "distractor_photos": 32, "distractor_views": 2, "offset": 40}
KNN = {"photos_per_class": 12, "queries_per_class": 3, "offset": 32}
#: default attack radii of the bundled sets (64x64 images, as the 2AFC sample's)
BUNDLED_ATTACK_EPS = {"l2": (0.25, 0.5, 1.0, 2.0), "linf": (2 / 255, 4 / 255, 8 / 255)}


def _recipe(kind: str) -> dict[str, object]:
    """Everything a cached set was built by: a cache built by other rules is rebuilt."""
    sources = TEST_SOURCES if kind == "retrieval" else TEST_SOURCES + TRAIN_SOURCES
    counts = RETRIEVAL if kind == "retrieval" else KNN
    return {"size": SIZE, "seed": SEED, "sources": list(sources), "view_shift": VIEW_SHIFT,
            "view_extent": list(view_extents(SIZE)), **counts}  # fmt: skip


def _software_versions() -> dict[str, str]:
    import numpy as np
    import PIL
    import skimage

    return {"numpy": np.__version__, "pillow": PIL.__version__, "scikit-image": skimage.__version__,
            "zlib": zlib.ZLIB_RUNTIME_VERSION}  # fmt: skip


def _csv_text(columns: tuple[str, ...], rows: list[dict[str, object]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


META_COLUMNS = ("path", "role", "photo", "source", "scale", "y", "x", "dy", "dx", "extent")


class _Writer:
    """Writes PNGs and tables into the build folder, remembering each file's sha256 and every pixel for the manifest."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.images: dict[str, str] = {}
        self.pixels = hashlib.sha256()
        self.meta: list[dict[str, object]] = []

    def image(self, rel: str, view: View, photo: Photo, label: str, role: str, source: str) -> None:
        data = png_bytes(view.image)
        target = self.out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.images[rel] = hashlib.sha256(data).hexdigest()
        self.pixels.update(view.image.tobytes())
        self.meta.append({"path": rel, "role": role, "photo": label, "source": source, "scale": photo.scale,
                          "y": photo.cy, "x": photo.cx, "dy": view.dy, "dx": view.dx, "extent": view.extent})  # fmt: skip

    def table(self, name: str, columns: tuple[str, ...], rows: list[dict[str, object]]) -> None:
        (self.out / name).write_text(_csv_text(columns, rows), encoding="utf-8")

    def manifest(self, name: str, kind: str, tables: tuple[str, ...], **extra: object) -> None:
        self.table("meta.csv", META_COLUMNS, self.meta)
        manifest = {
            "name": name,
            "version": GALLERY_SAMPLE_VERSION,
            "recipe": _recipe(kind),
            **extra,
            "files": {t: sha256_file(self.out / t) for t in (*tables, "meta.csv")},
            "pixels_sha256": self.pixels.hexdigest(),
            "images": self.images,
            "software": _software_versions(),
            "builder": f"lipsim_bench.datasets.gallery_sample.build_sample_{kind}",
        }
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


@lru_cache(maxsize=2)
def _sources(filenames: tuple[str, ...]) -> list[Source]:
    """The decoded, rescaled source photos (1-2 s for all 18), kept for a second build in the same process."""
    return load_sources(filenames, SIZE)


def _write_retrieval(out: Path) -> None:
    sources = _sources(TEST_SOURCES)
    r = RETRIEVAL
    n = r["query_photos"] + r["distractor_photos"]
    queried = spread(n, r["query_photos"])
    views = [1 + r["gallery_views"] if q else r["distractor_views"] for q in queried]
    photos, skipped = draw_photos(sources, [SEED, RETRIEVAL_TAG], n, views, SIZE, r["offset"])
    w = _Writer(out)
    queries, gallery, relevance = [], [], []
    for k, ((photo, photo_views), is_queried) in enumerate(zip(photos, queried)):
        label, source = f"p{k:03d}", sources[photo.source].name
        first = 0
        if is_queried:
            qid = f"q{len(queries):03d}"
            w.image(f"queries/{qid}.png", photo_views[0], photo, label, "query", source)
            queries.append({"id": qid, "path": f"queries/{qid}.png", "label": label})
            first = 1
        for view in photo_views[first:]:
            gid = f"g{len(gallery):03d}"
            w.image(f"gallery/{gid}.png", view, photo, label, "relevant" if is_queried else "distractor", source)
            gallery.append({"id": gid, "path": f"gallery/{gid}.png", "label": label})
            if is_queried:
                relevance.append({"query_id": queries[-1]["id"], "gallery_id": gid})
    w.table("queries.csv", ("id", "path", "label"), queries)
    w.table("gallery.csv", ("id", "path", "label"), gallery)
    w.table("relevance.csv", ("query_id", "gallery_id"), relevance)
    counts = {"queries": len(queries), "gallery": len(gallery), "photos": n, "skipped_streams": skipped}
    w.manifest("sample-retrieval", "retrieval", ("queries.csv", "gallery.csv", "relevance.csv"), counts=counts)


def _write_knn(out: Path) -> None:
    sources = _sources(TEST_SOURCES + TRAIN_SOURCES)
    per, nq = KNN["photos_per_class"], KNN["queries_per_class"]
    is_query = spread(per, nq)
    w = _Writer(out)
    skipped: dict[str, int] = {}
    counts = {"classes": len(sources), "queries": 0, "gallery": 0}
    for si, src in enumerate(sources):
        photos, skipped[src.name] = draw_photos(sources, [SEED, KNN_TAG, si], per, [1] * per, SIZE, KNN["offset"], si)
        for k, ((photo, (view,)), query) in enumerate(zip(photos, is_query)):
            folder, role = ("test", "query") if query else ("train", "gallery")
            w.image(f"{folder}/{src.name}/{k:03d}.png", view, photo, src.name, role, src.name)
            counts["queries" if query else "gallery"] += 1
    w.manifest("sample-knn", "knn", (), counts=counts, skipped_streams=skipped)


def _build(root: Path, write: Callable[[Path], None]) -> Path:
    """Write into a temporary sibling folder and rename it into place: an interrupted build leaves no half set."""
    return build_folder(root, write)


def build_sample_retrieval(root: str | Path) -> Path:
    """Build ``sample-retrieval`` at ``root`` (replacing what is there); same pixels on every machine."""
    return _build(Path(root), _write_retrieval)


def build_sample_knn(root: str | Path) -> Path:
    """Build ``sample-knn`` at ``root`` (replacing what is there); same pixels on every machine."""
    return _build(Path(root), _write_knn)


BUILDERS = {"retrieval": build_sample_retrieval, "knn": build_sample_knn}


def cached_root(kind: str, cache_dir: str | Path | None = None) -> Path:
    """The cached bundled set (``sample-retrieval-v1/`` or ``sample-knn-v1/`` in the cache), built first when absent,
    built by another recipe, or altered since (every file is checked against the manifest's sha256, cheaply)."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    root = base / f"sample-{kind}-{GALLERY_SAMPLE_VERSION}"
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            found = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = {}  # unreadable manifest: rebuild
        if (
            isinstance(found, dict)
            and found.get("version") == GALLERY_SAMPLE_VERSION
            and found.get("recipe") == _recipe(kind)
        ):
            changed = changed_file(root, found)
            if changed is None:
                return root
            print(f"sample-{kind} set: {root / changed} was deleted or altered since it was built; rebuilding it "
                  "(it is built here from scikit-image's photos, nothing to download)", file=sys.stderr)  # fmt: skip
    try:
        return BUILDERS[kind](root)
    except OSError:
        if manifest.is_file():  # another process finished the same build first
            return root
        raise


@register_dataset(
    "sample-retrieval",
    splits=("test",),
    default_split="test",
    needs_root=False,
    description=(
        "bundled 64x64 retrieval set from the held-out sample photos: 48 queries, 208 gallery images "
        "(3 other views of each query's photo + distractors; built offline in seconds; CSV layout)"
    ),
    task="retrieval",
    attack_eps=BUNDLED_ATTACK_EPS,
)
def sample_retrieval_dataset(root: Path | None, split: str) -> GalleryDataset:
    return csv_gallery_dataset(root or cached_root("retrieval"), split, name="sample-retrieval", image_size=None)


@register_dataset(
    "sample-knn",
    splits=("test",),
    default_split="test",
    needs_root=False,
    description=(
        "bundled 64x64 kNN set, label = source photo (all 18 sample photos): 54 queries, 162 gallery images "
        "(built offline in seconds; labelled folders)"
    ),
    task="knn",
    attack_eps=BUNDLED_ATTACK_EPS,
)
def sample_knn_dataset(root: Path | None, split: str) -> GalleryDataset:
    return folder_gallery_dataset(root or cached_root("knn"), split, name="sample-knn", image_size=None)
