"""Shared fixtures: offline hubs, miniature dataset trees created on the fly."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # 2 spinning OpenMP threads on a busy 2-core box run 30-100x slower
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a failed hub call would retry for ~30 s
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# verification mode: attacks also run on triplets proven robust, so every certificate meets an attack
# (tests of the skipping itself turn it off with monkeypatch.delenv)
os.environ.setdefault("LIPSIM_BENCH_VERIFY", "1")
# a device profile measured on this checkout's machine must not change the dry runs the tests read
os.environ.setdefault("LIPSIM_BENCH_DEVICE_PROFILE", "none")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

torch.set_num_threads(2)


def write_png(path: Path, rng: np.random.Generator, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def make_night_tree(root: Path, rows: list[dict], size: int = 16, seed: int = 0) -> Path:
    """A miniature NIGHT: data.csv plus random PNGs at the paths it lists."""
    rng = np.random.default_rng(seed)
    records = []
    for i, row in enumerate(rows):
        folder = f"{i // 100:03d}"
        rec = {
            "id": i,
            "left_vote": 1 - row.get("p", 1.0),
            "right_vote": row.get("p", 1.0),
            "votes": row.get("votes", 6),
            "ref_path": f"ref/{folder}/{i:03d}.png",
            "left_path": f"distort/{folder}/{i:03d}_0.png",
            "right_path": f"distort/{folder}/{i:03d}_1.png",
            "split": row.get("split", "test"),
            "is_imagenet": row.get("is_imagenet", False),
        }
        records.append(rec)
        for key in ("ref_path", "left_path", "right_path"):
            write_png(root / rec[key], rng, size)
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(records).to_csv(root / "data.csv", index=False)
    return root


@pytest.fixture
def night_tree(tmp_path: Path) -> Path:
    """12 triplets: 2 dropped by the votes filter, 2 train, 2 val, 4 test (3 imagenet + 1 not)... see rows."""
    rows = (
        [{"split": "train", "p": 1.0}] * 2
        + [{"split": "val", "p": 0.0}] * 2
        + [{"split": "test", "is_imagenet": True, "p": 1.0}] * 3
        + [{"split": "test", "is_imagenet": False, "p": 0.5}] * 3
        + [{"split": "test", "is_imagenet": False, "votes": 5}] * 2
    )
    return make_night_tree(tmp_path / "nights", rows)
