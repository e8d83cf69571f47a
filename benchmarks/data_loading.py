"""Reading NIGHT-sized triplets: the first pass (decode 768x768 PNGs + bicubic resize) vs later passes.

Usage: python benchmarks/data_loading.py [--triplets 40] [--source-size 768] [--workers 0]
A run reads every image once per unit (natural, certified, each attack eps); the dataset keeps the
decoded 224x224 images (uint8) in memory, so only the first unit pays for decoding. Builds a NIGHT-like
folder of random-noise PNGs (the worst case for PNG decoding) in a temp dir and prints triplets/s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from lipsim_bench.datasets import create_dataset  # noqa: E402
from lipsim_bench.run.loop import make_loader  # noqa: E402


def build(root: Path, triplets: int, size: int) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(triplets):
        paths = {
            "ref_path": f"ref/000/{i:03d}.png",
            "left_path": f"distort/000/{i:03d}_0.png",
            "right_path": f"distort/000/{i:03d}_1.png",
        }
        for rel in paths.values():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / rel)
        rows.append(
            {"id": i, "left_vote": 0.0, "right_vote": 1.0, "votes": 6, **paths, "split": "test", "is_imagenet": False}
        )
    pd.DataFrame(rows).to_csv(root / "data.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triplets", type=int, default=40)
    parser.add_argument("--source-size", type=int, default=768)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, args.triplets, args.source_size)
        dataset = create_dataset(f"night:{root}", "test")
        loader = make_loader(dataset, batch_size=10, workers=args.workers)
        for label in ("first pass (decode + resize)", "second pass (cached)", "third pass (cached)"):
            start = time.perf_counter()
            count = sum(len(batch["id"]) for batch in loader)
            seconds = time.perf_counter() - start
            print(f"{label:<30} {count / seconds:8.1f} triplets/s ({seconds:.2f} s for {count})")


if __name__ == "__main__":
    main()
