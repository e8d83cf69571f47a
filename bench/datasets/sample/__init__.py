"""The bundled default 2AFC dataset ``sample``: built offline, deterministically, from scikit-image's photos.

Why: the real benchmark set (NIGHT) needs a download; tests, CI and first-time users need a set that
is always there, builds in seconds and behaves like NIGHT in the way that matters: in NIGHT, x0 and
x1 are far apart in pixel space and the right answer is about content, not about which image is the
less distorted one. So a learned metric must clearly beat plain pixel-l2 here too.

Rules (version ``v2``; any change to them must bump :data:`SAMPLE_VERSION`):

* Sources: only photographs that ship inside the scikit-image wheel (no download). Whole source
  images are held out: ``test`` uses chelsea and motorcycle_left; ``train`` uses the other 16
  (6 colour + 10 grayscale, grayscale repeated to RGB). motorcycle_right is left out: it is the
  other half of the motorcycle stereo pair, the same scene as a test image. ``val`` (v2) is drawn from the
  train photos by the train rules (no further photo is left to hold out): its content overlaps train, its images
  do not (a val draw that repeats an earlier split's image is redrawn from ``[seed, 2, index, k]``, k = 1, 2, ...).
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
(x1, right), 100 triplets a folder, train ids first, then test, then val (appended in v2: v1's ids and
pixels are unchanged). ``ROOT/meta.csv`` says where each triplet came from; ``ROOT/manifest.json`` records version, seed, sizes, sources, counts and hashes.

Determinism: every triplet has its own random stream, ``default_rng([seed, split, index])``
(PCG64; split 0 = train, 1 = test, 2 = val), drawn with integer draws only, and every image operation is integer or exact/elementwise
float arithmetic (no reductions over floats, no transcendental functions on pixels), so the pixels
are the same on every machine, whatever the thread count. PNGs are written by a small fixed encoder
(Paeth filter + the stdlib zlib), so the bytes are also identical given the same zlib. The JPEG
sources are decoded by Pillow; ``manifest.json`` records a hash of each decoded source and of all
output pixels (``pixels_sha256``) to compare builds across machines.
"""

from lipsim_bench.datasets.sample.build import (
    DATA_COLUMNS,
    META_COLUMNS,
    build_sample_dataset,
    default_cache_dir,
    sample_dataset_root,
)
from lipsim_bench.datasets.sample.png import png_bytes
from lipsim_bench.datasets.sample.recipe import (
    DEFAULTS,
    SAMPLE_VERSION,
    SPLITS,
    TEST_SOURCES,
    TRAIN_SOURCES,
    VAL_SOURCES,
)

__all__ = [
    "DATA_COLUMNS",
    "DEFAULTS",
    "META_COLUMNS",
    "SAMPLE_VERSION",
    "SPLITS",
    "TEST_SOURCES",
    "TRAIN_SOURCES",
    "VAL_SOURCES",
    "build_sample_dataset",
    "default_cache_dir",
    "png_bytes",
    "sample_dataset_root",
]
