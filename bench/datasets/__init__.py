"""2AFC datasets: ``create_dataset("night:ROOT", split="test")``, ``bapps:ROOT``, ``sample``."""

from lipsim_bench.datasets import bapps, bundled, night  # noqa: F401  (registration side effects)
from lipsim_bench.datasets.base import (
    DatasetSpec,
    TripletRecord,
    TwoAFCDataset,
    create_dataset,
    list_datasets,
    parse_dataset_arg,
    register_dataset,
)

__all__ = [
    "DatasetSpec",
    "TripletRecord",
    "TwoAFCDataset",
    "create_dataset",
    "list_datasets",
    "parse_dataset_arg",
    "register_dataset",
]
