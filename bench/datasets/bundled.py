"""The bundled default dataset: ``sample``, built deterministically from scikit-image's photographs."""

from __future__ import annotations

from pathlib import Path

from lipsim_bench.datasets.base import TwoAFCDataset, register_dataset
from lipsim_bench.datasets.night.table import night_like_dataset


@register_dataset(
    "sample",
    splits=("train", "val", "test"),  # val: from the train photos, for choosing recipes (docs/sample_dataset.md)
    default_split="test",
    needs_root=False,
    description="bundled 64x64 2AFC set from scikit-image photos (built offline in seconds; NIGHT layout)",
    # the paper's 0.5..3 are for 3x224x224; the same per-pixel (RMS) change on 3x64x64 is 3.5x smaller, so the
    # sample set takes 0.25..2: the paper's range and a step beyond it in RMS terms
    attack_eps={"l2": (0.25, 0.5, 1.0, 2.0)},
)
def sample_dataset(root: Path | None, split: str) -> TwoAFCDataset:
    from lipsim_bench.datasets.sample import sample_dataset_root  # builds the set on first use

    return night_like_dataset(root or sample_dataset_root(), split, name="sample", image_size=None)
