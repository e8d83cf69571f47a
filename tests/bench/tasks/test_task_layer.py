"""The task layer: the registry, what records store about their task, and runs that refuse another task's
evaluations."""

from __future__ import annotations

from typing import ClassVar

import pytest

from lipsim_bench.datasets import DATASETS, dataset_attack_eps, dataset_task, register_dataset
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import get_evaluation
from lipsim_bench.registry import package_modules
from lipsim_bench.run.spec import RunSpec, check_spec
from lipsim_bench.tasks import TASKS, Task, TaskInfo, get_task, register_task, task_info


def test_2afc_is_a_task_with_the_tables_words() -> None:
    info = task_info("2afc")
    assert (info.item, info.items, info.score, info.rows_file) == ("triplet", "triplets", "2AFC score", "triplets.csv")
    assert get_task("2afc").default_evaluations == ("natural", "certified", "apgd")


def test_a_record_without_a_task_reads_as_2afc_and_a_stored_task_round_trips() -> None:
    assert TaskInfo.from_dict(None) == task_info("2afc")
    assert TaskInfo.from_dict({"name": "x", "item": 3}) == task_info("2afc")  # damaged: never a crash
    info = TaskInfo("toy", "query", "queries", "Recall@1", ("id", "rank"))
    assert TaskInfo.from_dict(info.as_dict()) == info


def test_every_module_of_a_registry_folder_is_loaded() -> None:
    """A new task, dataset or evaluation is one new file: the registries import their whole folder."""
    assert "lipsim_bench.tasks.twoafc" in package_modules("lipsim_bench.tasks")
    assert "lipsim_bench.datasets.bundled" in package_modules("lipsim_bench.datasets")
    assert {"2afc"} <= set(TASKS.names())


def test_register_task_refuses_an_incomplete_class() -> None:
    class NoBatches(Task):
        name, item, items, score_name = "toy-nobatches", "x", "xs", "score"

    with pytest.raises(BenchError, match="does not define batches"):
        register_task(NoBatches)

    class NoNoun(Task):
        name = "toy-nonoun"

    with pytest.raises(BenchError, match="needs a 'item'"):
        register_task(NoNoun)
    with pytest.raises(BenchError, match="unknown task|no task|did you mean"):
        get_task("no-such-task")


def test_datasets_carry_their_task_and_radii() -> None:
    assert dataset_task("sample") == "2afc" and dataset_task("night:/anywhere") == "2afc"
    assert dataset_attack_eps("sample", "l2") == (0.25, 0.5, 1.0, 2.0)
    assert dataset_attack_eps("night", "l2") == (0.5, 1.0, 2.0, 3.0)
    assert dataset_attack_eps("bapps:/x", "linf") == (2 / 255, 4 / 255, 8 / 255)  # the fallback


@pytest.fixture
def toy_task_dataset():
    """A dataset family of another task (its builder is never called: the request fails before)."""

    @register_task
    class Toy(Task):
        name, item, items, score_name = "toy-task", "thing", "things", "Toy score"
        default_evaluations: ClassVar[tuple[str, ...]] = ()

        def batches(self, metric, loader, device, desc, metric_name, cache=None):  # pragma: no cover
            return iter(())

    register_dataset(
        "toy-task-set", splits=("test",), default_split="test", needs_root=False, description="toy", task="toy-task"
    )(lambda root, split: None)
    yield "toy-task-set"
    DATASETS.remove("toy-task-set")
    TASKS.remove("toy-task")


def test_a_run_refuses_an_evaluation_of_another_task(toy_task_dataset: str) -> None:
    spec = RunSpec(metrics=["pixel-l2"], dataset=toy_task_dataset, evaluations=["natural"])
    with pytest.raises(BenchError, match="evaluation 'natural' scores 2afc items, and toy-task-set is a toy-task"):
        check_spec(spec)
    assert "2afc" in get_evaluation("natural").tasks
