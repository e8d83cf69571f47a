"""The bundled default 2AFC dataset ``sample``: built offline, deterministically, from scikit-image's photos.

Why: the real benchmark set (NIGHT) needs a download; tests, CI and first-time users need a set that
is always there, builds in seconds and behaves like NIGHT in the way that matters: in NIGHT, x0 and
x1 are far apart in pixel space and the right answer is about content, not about which image is the
less distorted one. So a learned metric must clearly beat plain pixel-l2 here too.

Rules (version ``v1``; any change to them must bump :data:`SAMPLE_VERSION`):

* Sources: only photographs that ship inside the scikit-image wheel (no download). Whole source
  images are held out: ``test`` uses chelsea and motorcycle_left; ``train`` uses the other 16
  (6 colour + 10 grayscale, grayscale repeated to RGB). motorcycle_right is left out: it is the
  other half of the motorcycle stereo pair, the same scene as a test image.
* Each source is kept at three scales (1, 3/4, 1/2; antialiased), where large enough.
* ref = a 64x64 crop of a random source (drawn once) at a random scale; crops whose grey-level
  std is below 16/255 are redrawn, so a ref always has content to match.
* closer image = another view of the same content: centre shifted by 6-16 px, extent 51-80 px
  (rescale 0.8-1.25), then jitter.
* other image = a pixel-space hard negative: of 16 random candidate crops (8 from the same source
  and scale whose centre is >= 40 px from the ref's along some axis, 8 from other sources of the
  same split), the one nearest to the ref in l2; rendered as a view (extent 51-80 px) with its own
  jitter, so both images went through the same kind of processing.
* jitter: brightness x0.8-1.2, contrast x0.75-1.3 (about the mean grey), saturation x0.6-1.4, then
  either a binomial blur (sigma 0.7-1.2) or integer noise (std 2.4-6.5 of 255).
* which of x0/x1 is the closer one is a fair coin: p = right_vote = 1.0 if x1 is closer, else 0.0.
  votes = 10 for every row (ground truth by construction, not people), so NIGHT's ``votes >= 6``
  filter keeps all rows.

Layout (NIGHT's, so one loader reads both): ``ROOT/data.csv`` with columns
``id,left_vote,right_vote,votes,ref_path,left_path,right_path,split,is_imagenet``, images at
``ref/000/000000.png``, ``distort/000/000000_0.png`` (x0, left), ``distort/000/000000_1.png``
(x1, right), 100 triplets a folder, train ids first. ``ROOT/meta.csv`` says where each triplet came
from; ``ROOT/manifest.json`` records version, seed, sizes, sources, counts and hashes.

Determinism: every triplet has its own random stream, ``default_rng([seed, split, index])``
(PCG64), drawn with integer draws only, and every image operation is integer or exact/elementwise
float arithmetic (no reductions over floats, no transcendental functions on pixels), so the pixels
are the same on every machine, whatever the thread count. PNGs are written by a small fixed encoder
(Paeth filter + the stdlib zlib), so the bytes are also identical given the same zlib. The JPEG
sources are decoded by Pillow; ``manifest.json`` records a hash of each decoded source and of all
output pixels (``pixels_sha256``) to compare builds across machines.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_VERSION: str = "v1"

TRAIN_SOURCES: tuple[str, ...] = (
    # colour
    "astronaut.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    # grayscale, repeated to RGB
    "camera.png",
    "brick.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "moon.png",
    "page.png",
    "text.png",
    "clock_motion.png",
    "cell.png",
)
TEST_SOURCES: tuple[str, ...] = ("chelsea.png", "motorcycle_left.png")
SPLITS: tuple[str, ...] = ("train", "test")

LEVEL_SCALES: tuple[float, ...] = (1.0, 0.75, 0.5)
VOTES = 10
FOLDER_SIZE = 100
SHIFT_MIN, SHIFT_MAX = 6, 16  # px, positive view's centre shift (euclidean length)
NEG_MIN_OFFSET = 40  # px, same-source negatives: centre this far from the ref's along some axis
N_CANDIDATES_SAME, N_CANDIDATES_OTHER = 8, 8
FLAT_STD = 16.0  # a ref whose grey level has a smaller std (0-255 units) is redrawn
MAX_TRIES = 64
DEFAULTS = {"n_train": 3000, "n_test": 300, "size": 64, "seed": 0}


def _recipe() -> dict[str, object]:
    """The rule constants, stored in the manifest: a cache built by other rules is rebuilt."""
    return {
        "train_sources": list(TRAIN_SOURCES),
        "test_sources": list(TEST_SOURCES),
        "level_scales": list(LEVEL_SCALES),
        "shift": [SHIFT_MIN, SHIFT_MAX],
        "neg_min_offset": NEG_MIN_OFFSET,
        "candidates": [N_CANDIDATES_SAME, N_CANDIDATES_OTHER],
        "flat_std": FLAT_STD,
        "max_tries": MAX_TRIES,
    }


@dataclass(frozen=True)
class _Source:
    """One source photo at its usable scales (uint8 HxWx3 arrays)."""

    name: str
    levels: dict[float, np.ndarray]


def _skimage_data_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def _load_rgb(filename: str) -> np.ndarray:
    """A bundled scikit-image photo as uint8 RGB; grayscale is repeated to three channels."""
    from PIL import Image

    path = _skimage_data_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(f"scikit-image sample photo {path} not found; reinstall scikit-image")
    with Image.open(path) as img:
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _source_name(filename: str) -> str:
    return filename.rsplit(".", 1)[0]


# ---------------------------------------------------------------------------------------------
# exact / elementwise image operations (deterministic on every IEEE-754 machine)


def _binomial_blur(img: np.ndarray, order: int) -> np.ndarray:
    """Separable binomial filter (integer taps / 2**order), edge padded; float64 HxWxC."""
    taps = [1]
    for _ in range(order):
        taps = [a + b for a, b in zip([0, *taps], [*taps, 0])]
    r = order // 2
    h, w = img.shape[:2]
    padded = np.pad(img.astype(np.float64), ((r, r), (0, 0), (0, 0)), mode="edge")
    acc = taps[0] * padded[0:h]
    for k in range(1, len(taps)):  # fixed order of adds: deterministic
        acc += taps[k] * padded[k : k + h]
    padded = np.pad(acc / float(2**order), ((0, 0), (r, r), (0, 0)), mode="edge")
    acc = taps[0] * padded[:, 0:w]
    for k in range(1, len(taps)):
        acc += taps[k] * padded[:, k : k + w]
    return acc / float(2**order)


def _bilinear(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``img`` (HxWxC) at the grid ys x xs (pixel-centre coordinates), clamped."""
    h, w = img.shape[:2]
    y0 = np.floor(ys)
    x0 = np.floor(xs)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    y0i = y0.astype(np.int64)
    x0i = x0.astype(np.int64)
    ya, yb = np.clip(y0i, 0, h - 1), np.clip(y0i + 1, 0, h - 1)
    xa, xb = np.clip(x0i, 0, w - 1), np.clip(x0i + 1, 0, w - 1)
    # only the window the samples touch is converted to float (views of a large photo are small)
    top, left = int(ya.min()), int(xa.min())
    window = img[top : int(yb.max()) + 1, left : int(xb.max()) + 1].astype(np.float64)
    ya, yb, xa, xb = ya - top, yb - top, xa - left, xb - left
    rows_a, rows_b = window[ya], window[yb]
    upper = rows_a[:, xa] * (1.0 - wx) + rows_a[:, xb] * wx
    lower = rows_b[:, xa] * (1.0 - wx) + rows_b[:, xb] * wx
    return upper * (1.0 - wy) + lower * wy


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _downscale(img: np.ndarray, scale: float) -> np.ndarray:
    """Antialiased downscale: 2x2 box for 1/2, binomial pre-blur + bilinear otherwise."""
    if scale == 1.0:
        return img
    h, w = img.shape[:2]
    if scale == 0.5:
        h2, w2 = h // 2, w // 2
        a = img[: 2 * h2, : 2 * w2].astype(np.int32)
        s = a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]
        return _to_uint8(s / 4.0)
    blurred = _binomial_blur(img, 2)
    nh, nw = int(h * scale), int(w * scale)
    ys = (np.arange(nh) + 0.5) / scale - 0.5
    xs = (np.arange(nw) + 0.5) / scale - 0.5
    return _to_uint8(_bilinear(blurred, ys, xs))


def _view(level: np.ndarray, cy: int, cx: int, extent: int, size: int) -> np.ndarray:
    """A size x size view of the extent x extent square centred at pixel corner (cy, cx)."""
    # pixel i samples at c - extent/2 + (i + 0.5) * extent/size - 0.5: exact for integer extent, size 2**k
    grid = (np.arange(size) + 0.5) * (extent / size) - extent / 2.0 - 0.5
    return _to_uint8(_bilinear(level, cy + grid, cx + grid))


def _crop(level: np.ndarray, cy: int, cx: int, size: int) -> np.ndarray:
    h = size // 2
    return level[cy - h : cy - h + size, cx - h : cx - h + size]


def _grey_sum(img: np.ndarray) -> np.ndarray:
    """256 x grey level (77 R + 150 G + 29 B), exact integers."""
    a = img.astype(np.int64)
    return 77 * a[..., 0] + 150 * a[..., 1] + 29 * a[..., 2]


def _is_flat(patch: np.ndarray) -> bool:
    """Grey-level std below FLAT_STD, computed exactly in integers."""
    g = _grey_sum(patch).ravel()
    n = g.size
    var_n2 = n * int((g * g).sum()) - int(g.sum()) ** 2  # n^2 * 256^2 * variance
    return var_n2 < (FLAT_STD * 256 * n) ** 2


def _jitter(view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photometric jitter with dyadic factors (exact in float64), then blur or integer noise."""
    b = int(rng.integers(51, 78)) / 64.0  # brightness 0.8 .. 1.2
    c = int(rng.integers(48, 84)) / 64.0  # contrast 0.75 .. 1.3
    s = int(rng.integers(38, 91)) / 64.0  # saturation 0.6 .. 1.4
    g_total = int(_grey_sum(view).sum())
    mean_grey = b * g_total / (256.0 * view.shape[0] * view.shape[1])  # exact: integer / power of two
    x = view.astype(np.float64) * b
    x = mean_grey + (x - mean_grey) * c
    x = np.clip(np.rint(x * 64.0) / 64.0, 0.0, 255.0)  # back onto a coarse dyadic grid: stays exact
    grey = (77.0 * x[..., 0] + 150.0 * x[..., 1] + 29.0 * x[..., 2])[..., None] / 256.0
    x = grey + (x - grey) * s
    x = _to_uint8(x)
    if rng.integers(2) == 0:
        order = int(rng.integers(2, 5))  # binomial order 2, 3, 4: sigma 0.71 .. 1.0
        if order == 3:
            order = 6  # odd orders shift by half a pixel: use sigma 1.22 instead
        return _to_uint8(_binomial_blur(x, order))
    a = int(rng.integers(2, 7))  # sum of three uniform integers in [-a, a]: std sqrt(a(a+1))
    noise = rng.integers(-a, a + 1, size=(3, *x.shape)).sum(axis=0)
    return np.clip(x.astype(np.int64) + noise, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# PNG writer: fixed filter and compression, so equal pixels give equal bytes


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(img: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of ``img`` (HxWx3 uint8): Paeth filter on every row, zlib level 6."""
    h, w, _ = img.shape
    raw = img.astype(np.int16)
    left = np.zeros_like(raw)
    left[:, 1:] = raw[:, :-1]
    up = np.zeros_like(raw)
    up[1:] = raw[:-1]
    upleft = np.zeros_like(raw)
    upleft[1:, 1:] = raw[:-1, :-1]
    p = left + up - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
    pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    rows = ((raw - pred) % 256).astype(np.uint8).reshape(h, w * 3)
    data = np.concatenate([np.full((h, 1), 4, np.uint8), rows], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(data, 6))
        + _png_chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------------------------------------
# triplets


@dataclass(frozen=True)
class _Triplet:
    ref: np.ndarray
    x0: np.ndarray
    x1: np.ndarray
    p: float
    meta: dict[str, object]


def _margin(size: int) -> int:
    """Distance a view's centre keeps from the border: shift + half the largest extent + 2."""
    return SHIFT_MAX + (size * 5 // 4) // 2 + 2


def _load_sources(filenames: tuple[str, ...], size: int) -> list[_Source]:
    m = _margin(size)
    sources = []
    for filename in filenames:
        img = _load_rgb(filename)
        levels = {}
        for scale in LEVEL_SCALES:
            level = _downscale(img, scale)
            if min(level.shape[:2]) >= 2 * m + size // 4:
                levels[scale] = level
        if not levels:
            raise ValueError(f"source {filename} is too small for {size}x{size} patches")
        sources.append(_Source(_source_name(filename), levels))
    return sources


def _pick_level(rng: np.random.Generator, source: _Source) -> float:
    scales = sorted(source.levels, reverse=True)
    return scales[int(rng.integers(len(scales)))]


def _pick_centre(rng: np.random.Generator, level: np.ndarray, size: int) -> tuple[int, int]:
    m = _margin(size)
    h, w = level.shape[:2]
    return int(rng.integers(m, h - m + 1)), int(rng.integers(m, w - m + 1))


def _make_triplet(sources: list[_Source], rng: np.random.Generator, size: int) -> _Triplet:
    """One triplet from its own random stream; see the module docstring for the rules."""
    # reference: a non-flat crop; the source is drawn once, so every source gets its share
    si = int(rng.integers(len(sources)))
    src = sources[si]
    for _ in range(MAX_TRIES):
        scale = _pick_level(rng, src)
        level = src.levels[scale]
        cy, cx = _pick_centre(rng, level, size)
        ref = _crop(level, cy, cx, size)
        if not _is_flat(ref):
            break
    ref = np.ascontiguousarray(ref)

    # positive: same content, shifted 6..16 px, rescaled 0.8..1.25, jittered
    while True:
        dy, dx = (int(v) for v in rng.integers(-SHIFT_MAX, SHIFT_MAX + 1, size=2))
        if SHIFT_MIN**2 <= dy * dy + dx * dx <= SHIFT_MAX**2:
            break
    lo, hi = (size * 4 + 4) // 5, size * 5 // 4  # extents 51..80 for size 64
    positive = _jitter(_view(level, cy + dy, cx + dx, int(rng.integers(lo, hi + 1)), size), rng)

    # negative: nearest to the ref in l2 among 16 candidates of other content
    others = [i for i in range(len(sources)) if i != si]
    candidates: list[tuple[int, float, int, int]] = []
    for _ in range(N_CANDIDATES_SAME):
        for _ in range(MAX_TRIES):
            ny, nx = _pick_centre(rng, level, size)
            if max(abs(ny - cy), abs(nx - cx)) >= NEG_MIN_OFFSET:
                candidates.append((si, scale, ny, nx))
                break
    while others and len(candidates) < N_CANDIDATES_SAME + N_CANDIDATES_OTHER:
        oi = others[int(rng.integers(len(others)))]
        oscale = _pick_level(rng, sources[oi])
        ny, nx = _pick_centre(rng, sources[oi].levels[oscale], size)
        candidates.append((oi, oscale, ny, nx))
    if not candidates:
        raise ValueError(f"no negative candidate for a ref in {src.name}: a split needs 2+ sources or larger photos")
    ref_i = ref.astype(np.int32)
    dists = [
        int(((_crop(sources[oi].levels[osc], ny, nx, size).astype(np.int32) - ref_i) ** 2).sum())
        for oi, osc, ny, nx in candidates
    ]
    ni, nscale, ny, nx = candidates[int(np.argmin(dists))]
    negative = _jitter(_view(sources[ni].levels[nscale], ny, nx, int(rng.integers(lo, hi + 1)), size), rng)

    x1_closer = bool(rng.integers(2))
    x0, x1 = (negative, positive) if x1_closer else (positive, negative)
    meta = {
        "source": src.name,
        "scale": scale,
        "ref_y": cy,
        "ref_x": cx,
        "pos_dy": dy,
        "pos_dx": dx,
        "neg_source": sources[ni].name,
        "neg_scale": nscale,
        "neg_y": ny,
        "neg_x": nx,
    }
    return _Triplet(ref, x0, x1, 1.0 if x1_closer else 0.0, meta)


# ---------------------------------------------------------------------------------------------
# build


DATA_COLUMNS = ("id", "left_vote", "right_vote", "votes", "ref_path", "left_path", "right_path", "split", "is_imagenet")
META_COLUMNS = (
    "id", "split", "source", "scale", "ref_y", "ref_x", "pos_dy", "pos_dx",
    "neg_source", "neg_scale", "neg_y", "neg_x", "closer",
)  # fmt: skip


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _csv_text(columns: tuple[str, ...], rows: list[dict[str, object]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _software_versions() -> dict[str, str]:
    import PIL
    import skimage

    return {"numpy": np.__version__, "pillow": PIL.__version__, "scikit-image": skimage.__version__, "zlib": zlib.ZLIB_RUNTIME_VERSION}


def _write_dataset(out: Path, *, n_train: int, n_test: int, size: int, seed: int, progress: bool) -> None:
    from tqdm import tqdm

    split_files = {"train": TRAIN_SOURCES, "test": TEST_SOURCES}
    counts = {"train": n_train, "test": n_test}
    data_rows: list[dict[str, object]] = []
    meta_rows: list[dict[str, object]] = []
    pixels = hashlib.sha256()
    source_hashes: dict[str, str] = {}
    next_id = 0
    with tqdm(total=n_train + n_test, desc=f"building sample-{SAMPLE_VERSION}", unit="triplet", disable=not progress) as bar:
        for split_index, split in enumerate(SPLITS):
            if counts[split] == 0:
                continue
            sources = _load_sources(split_files[split], size)
            for src in sources:
                source_hashes[src.name] = hashlib.sha256(src.levels[max(src.levels)].tobytes()).hexdigest()
            for index in range(counts[split]):
                rng = np.random.default_rng([seed, split_index, index])
                t = _make_triplet(sources, rng, size)
                tid = next_id
                next_id += 1
                folder = f"{tid // FOLDER_SIZE:03d}"
                paths = {
                    "ref_path": f"ref/{folder}/{tid:06d}.png",
                    "left_path": f"distort/{folder}/{tid:06d}_0.png",
                    "right_path": f"distort/{folder}/{tid:06d}_1.png",
                }
                for key, img in (("ref_path", t.ref), ("left_path", t.x0), ("right_path", t.x1)):
                    target = out / paths[key]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(png_bytes(img))
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
        "counts": {s: sum(1 for r in data_rows if r["split"] == s) for s in SPLITS},
        "right_closer": {s: sum(1 for r in data_rows if r["split"] == s and r["right_vote"] == 1.0) for s in SPLITS},
        "sources": {s: [_source_name(f) for f in split_files[s]] for s in SPLITS},
        "source_sha256": source_hashes,
        "votes": VOTES,
        "recipe": _recipe(),
        "files": {"data.csv": _sha256(out / "data.csv"), "meta.csv": _sha256(out / "meta.csv")},
        "pixels_sha256": pixels.hexdigest(),
        "software": _software_versions(),
        "builder": "bench.datasets.sample.build_sample_dataset",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def build_sample_dataset(
    root: str | Path,
    *,
    n_train: int = 3000,
    n_test: int = 300,
    size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Build the ``sample`` 2AFC set at ``root`` (replacing what is there) and return ``root``.

    Writes into a temporary sibling folder and renames it into place, so an interrupted build never
    leaves a half dataset behind. Same arguments, same pixels, on every machine.
    """
    if n_train < 0 or n_test < 0:
        raise ValueError("n_train and n_test must be >= 0")
    if size < 16 or size & (size - 1):
        raise ValueError("size must be a power of two >= 16 (exact resampling)")
    root = Path(root).expanduser().absolute()
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.building-", dir=root.parent))
    try:
        _write_dataset(tmp, n_train=n_train, n_test=n_test, size=size, seed=seed, progress=progress)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the dataset is not
        old = None
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            os.replace(root, old / "x")
        os.replace(tmp, root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def default_cache_dir() -> Path:
    """Where built datasets live: ``$LIPSIM_BENCH_CACHE`` if set, else ``~/.cache/lipsim_bench``."""
    env = os.environ.get("LIPSIM_BENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lipsim_bench"


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
        if all(found.get(k) == v for k, v in wanted.items()):
            return root
    try:
        return build_sample_dataset(root, **DEFAULTS)
    except OSError:
        if manifest.is_file():  # another process finished the same build first
            return root
        raise
