"""The rules of the ``sample`` set, as constants (see the package docstring); changing one must bump SAMPLE_VERSION."""

from __future__ import annotations

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
