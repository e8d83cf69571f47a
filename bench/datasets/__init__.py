"""Datasets: ``create_dataset("night:ROOT", split="test")``, ``bapps:ROOT``, ``sample``, and every family a module
of this folder (or a plugin) registers; each names the task that scores its items.

Every module of this folder is imported when the registry is first read (``DATASETS``), so a new dataset is one
new file here, with no list to edit.
"""

from lipsim_bench.datasets.base import (
    DATASETS,
    FALLBACK_ATTACK_EPS,
    DatasetSpec,
    TripletRecord,
    TwoAFCDataset,
    create_dataset,
    dataset_attack_eps,
    dataset_task,
    list_datasets,
    parse_dataset_arg,
    register_dataset,
)

__all__ = [
    "DATASETS",
    "FALLBACK_ATTACK_EPS",
    "DatasetSpec",
    "TripletRecord",
    "TwoAFCDataset",
    "create_dataset",
    "dataset_attack_eps",
    "dataset_task",
    "list_datasets",
    "parse_dataset_arg",
    "register_dataset",
]
