"""Build the ``sample`` set (data.csv, meta.csv, images, manifest.json) atomically, and find or build it in the cache."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import zlib
from pathlib import Path

import numpy as np

from lipsim_bench.datasets.sample.check import changed_file
from lipsim_bench.datasets.sample.photos import Source, load_sources, source_name
from lipsim_bench.datasets.sample.png import png_bytes
from lipsim_bench.datasets.sample.recipe import (
    DEFAULTS,
    FLAT_STD,
    FOLDER_SIZE,
    LEVEL_SCALES,
    MAX_TRIES,
    N_CANDIDATES_OTHER,
    N_CANDIDATES_SAME,
    NEG_MIN_OFFSET,
    SAMPLE_VERSION,
    SHIFT_MAX,
    SHIFT_MIN,
    SPLITS,
    TEST_SOURCES,
    TRAIN_SOURCES,
    VAL_SOURCES,
    VOTES,
)
from lipsim_bench.datasets.sample.triplets import Triplet, make_triplet
from lipsim_bench.io import build_folder, sha256_file
from lipsim_bench.locations import cache_root


def _recipe() -> dict[str, object]:
    """The rule constants, stored in the manifest: a cache built by other rules is rebuilt."""
    return {
        "train_sources": list(TRAIN_SOURCES),
        "test_sources": list(TEST_SOURCES),
        "val_sources": list(VAL_SOURCES),
        "level_scales": list(LEVEL_SCALES),
        "shift": [SHIFT_MIN, SHIFT_MAX],
        "neg_min_offset": NEG_MIN_OFFSET,
        "candidates": [N_CANDIDATES_SAME, N_CANDIDATES_OTHER],
        "flat_std": FLAT_STD,
        "max_tries": MAX_TRIES,
    }


DATA_COLUMNS = ("id", "left_vote", "right_vote", "votes", "ref_path", "left_path", "right_path", "split", "is_imagenet")
META_COLUMNS = (
    "id", "split", "source", "scale", "ref_y", "ref_x", "pos_dy", "pos_dx",
    "neg_source", "neg_scale", "neg_y", "neg_x", "closer",
)  # fmt: skip


def _csv_text(columns: tuple[str, ...], rows: list[dict[str, object]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _software_versions() -> dict[str, str]:
    import PIL
    import skimage

    return {
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "scikit-image": skimage.__version__,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }


def _draw(
    sources: list[Source], stream: list[int], size: int, forbidden: set[str]
) -> tuple[Triplet, tuple[bytes, bytes, bytes], int]:
    """The triplet of ``stream`` (``[seed, split, index]``), its three PNGs, and how often it was redrawn.

    Attempt 0 uses the stream itself (train and test never redraw: ``forbidden`` is empty), attempt k the stream
    ``[*stream, k]``, until no PNG's sha256 is in ``forbidden``."""
    for attempt in range(MAX_TRIES):
        rng = np.random.default_rng(stream if attempt == 0 else [*stream, attempt])
        t = make_triplet(sources, rng, size)
        blobs = (png_bytes(t.ref), png_bytes(t.x0), png_bytes(t.x1))
        if not any(hashlib.sha256(b).hexdigest() in forbidden for b in blobs):
            return t, blobs, attempt
    raise ValueError(f"sample triplet {stream}: every draw repeated an image of an earlier split")


def _write_dataset(out: Path, *, n_train: int, n_test: int, n_val: int, size: int, seed: int, progress: bool) -> None:
    from tqdm import tqdm

    split_files = {"train": TRAIN_SOURCES, "test": TEST_SOURCES, "val": VAL_SOURCES}
    counts = {"train": n_train, "test": n_test, "val": n_val}
    data_rows: list[dict[str, object]] = []
    meta_rows: list[dict[str, object]] = []
    pixels = hashlib.sha256()
    image_hashes: dict[str, str] = {}  # relpath -> sha256 of the PNG: checked at run time (sample/check.py)
    source_hashes: dict[str, str] = {}
    loaded: dict[tuple[str, ...], list[Source]] = {}
    redrawn: list[dict[str, int]] = []  # val triplets redrawn because an image repeated a train image
    next_id = 0
    with tqdm(
        total=n_train + n_test + n_val, desc=f"building sample-{SAMPLE_VERSION}", unit="triplet", disable=not progress
    ) as bar:
        for split_index, split in enumerate(SPLITS):  # train 0, test 1, val 2: the stream of each triplet
            if counts[split] == 0:
                continue
            if split_files[split] not in loaded:  # val reuses the train photos as loaded
                loaded[split_files[split]] = load_sources(split_files[split], size)
            sources = loaded[split_files[split]]
            for src in sources:
                source_hashes[src.name] = hashlib.sha256(src.levels[max(src.levels)].tobytes()).hexdigest()
            # val is drawn from the train photos: a val triplet with an image equal (sha256) to one of an earlier
            # split is redrawn from the next stream of its index, so val never repeats a train image
            seen = set(image_hashes.values()) if split == "val" else set()
            for index in range(counts[split]):
                t, blobs, attempt = _draw(sources, [seed, split_index, index], size, seen)
                if attempt:
                    redrawn.append({"index": index, "attempts": attempt})
                tid = next_id
                next_id += 1
                folder = f"{tid // FOLDER_SIZE:03d}"
                paths = {
                    "ref_path": f"ref/{folder}/{tid:06d}.png",
                    "left_path": f"distort/{folder}/{tid:06d}_0.png",
                    "right_path": f"distort/{folder}/{tid:06d}_1.png",
                }
                for key, img, data in zip(("ref_path", "left_path", "right_path"), (t.ref, t.x0, t.x1), blobs):
                    target = out / paths[key]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                    image_hashes[paths[key]] = hashlib.sha256(data).hexdigest()
                    pixels.update(img.tobytes())
                data_rows.append(
                    {
                        "id": tid,
                        "left_vote": 1.0 - t.p,
                        "right_vote": t.p,
                        "votes": VOTES,
                        **paths,
                        "split": split,
                        "is_imagenet": False,
                    }
                )
                meta_rows.append({"id": tid, "split": split, **t.meta, "closer": "right" if t.p == 1.0 else "left"})
                bar.update(1)

    (out / "data.csv").write_text(_csv_text(DATA_COLUMNS, data_rows), encoding="utf-8")
    (out / "meta.csv").write_text(_csv_text(META_COLUMNS, meta_rows), encoding="utf-8")
    manifest = {
        "name": "sample",
        "version": SAMPLE_VERSION,
        "seed": seed,
        "size": size,
        "n_train": n_train,
        "n_test": n_test,
        "n_val": n_val,
        "counts": {s: sum(1 for r in data_rows if r["split"] == s) for s in SPLITS},
        "right_closer": {s: sum(1 for r in data_rows if r["split"] == s and r["right_vote"] == 1.0) for s in SPLITS},
        "sources": {s: [source_name(f) for f in split_files[s]] for s in SPLITS},
        "val_from": "train photos (own crops and streams; no further photo to hold out)",
        "val_redrawn": redrawn,
        "source_sha256": source_hashes,
        "votes": VOTES,
        "recipe": _recipe(),
        "files": {"data.csv": sha256_file(out / "data.csv"), "meta.csv": sha256_file(out / "meta.csv")},
        "pixels_sha256": pixels.hexdigest(),
        "images": image_hashes,
        "software": _software_versions(),
        "builder": "lipsim_bench.datasets.sample.build_sample_dataset",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def build_sample_dataset(
    root: str | Path,
    *,
    n_train: int = 3000,
    n_test: int = 300,
    n_val: int = 300,
    size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Build the ``sample`` 2AFC set at ``root`` (replacing what is there) and return ``root``.

    Writes into a temporary sibling folder and renames it into place, so an interrupted build never
    leaves a half dataset behind. Same arguments, same pixels, on every machine.
    """
    if n_train < 0 or n_test < 0 or n_val < 0:
        raise ValueError("n_train, n_test and n_val must be >= 0")
    if size < 16 or size & (size - 1):
        raise ValueError("size must be a power of two >= 16 (exact resampling)")
    return build_folder(
        root,
        lambda out: _write_dataset(
            out, n_train=n_train, n_test=n_test, n_val=n_val, size=size, seed=seed, progress=progress
        ),
    )


def default_cache_dir() -> Path:
    """Where built datasets live: ``$LIPSIM_BENCH_CACHE`` if set, else ``~/.cache/lipsim_bench``."""
    return cache_root()


def sample_dataset_root(cache_dir: str | Path | None = None) -> Path:
    """The root of the default ``sample`` set in the cache, built first if it is not there yet."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    root = root / f"sample-{SAMPLE_VERSION}"
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            found = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = {}  # unreadable manifest: rebuild
        wanted = {"version": SAMPLE_VERSION, "recipe": _recipe(), **DEFAULTS}
        if isinstance(found, dict) and all(found.get(k) == v for k, v in wanted.items()) and "images" in found:
            changed = changed_file(root, found)
            if changed is None:
                return root
            print(
                f"sample set: {root / changed} was deleted or altered since it was built; rebuilding the set "
                "(it is built here from scikit-image's photos, nothing to download)",
                file=sys.stderr,
            )
    try:
        return build_sample_dataset(root, **DEFAULTS)
    except OSError:
        if manifest.is_file():  # another process finished the same build first
            return root
        raise
