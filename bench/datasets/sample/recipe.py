"""The rules of the ``sample`` set, as constants (see the package docstring); changing one must bump SAMPLE_VERSION."""

from __future__ import annotations

SAMPLE_VERSION: str = "v2"  # v2: the val split (v1 had train and test only; their pixels and ids are unchanged)

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
#: val is drawn from the train photos (scikit-image has no further usable photo to hold out): its own crops and
#: streams, same content. A recipe chosen on val is chosen without looking at test.
VAL_SOURCES: tuple[str, ...] = TRAIN_SOURCES
#: build order = id order = the split index of each triplet's stream (train 0, test 1, val 2): val is appended
#: after test, so the v1 train and test triplets keep their pixels and ids.
SPLITS: tuple[str, ...] = ("train", "test", "val")

LEVEL_SCALES: tuple[float, ...] = (1.0, 0.75, 0.5)
VOTES = 10
FOLDER_SIZE = 100
SHIFT_MIN, SHIFT_MAX = 6, 16  # px, positive view's centre shift (euclidean length)
NEG_MIN_OFFSET = 40  # px, same-source negatives: centre this far from the ref's along some axis
N_CANDIDATES_SAME, N_CANDIDATES_OTHER = 8, 8
FLAT_STD = 16.0  # a ref whose grey level has a smaller std (0-255 units) is redrawn
MAX_TRIES = 64
DEFAULTS = {"n_train": 3000, "n_test": 300, "n_val": 300, "size": 64, "seed": 0}
