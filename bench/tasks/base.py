"""The Task protocol (lm-evaluation-harness's output types): a task owns its batches, its per-item row columns,
its score and its table title; datasets and evaluations only name it.

A task is one small file: subclass :class:`Task`, decorate it with ``@register_task``, and put the file in
``lipsim_bench/tasks/`` (every module there is loaded), in a ``--plugin FILE.py`` or behind an entry point in
``lipsim_bench.tasks``. A dataset family declares its task (``register_dataset(..., task=NAME)``); an evaluation
lists the tasks it scores (``Evaluation.tasks``), and a run plans only those of its dataset's task.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import pandas as pd

from lipsim_bench.errors import BenchError
from lipsim_bench.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

    from lipsim_bench.evaluations.base import EmbeddingCache
    from lipsim_bench.metrics import PerceptualMetric

T = TypeVar("T", bound=type)

#: The task of records and runs that name none (every run before tasks existed was 2AFC).
DEFAULT_TASK = "2afc"


@dataclass(frozen=True)
class TaskInfo:
    """What a record stores about its task, so tables and plots never need the registry (or a plugin loaded)."""

    name: str
    item: str  # one scored item, singular: "triplet", "query"
    items: str  # plural: "triplets", "queries"
    score: str  # the table's quantity: "2AFC score", "Recall@1"
    row_columns: tuple[str, ...] = ()  # per-item columns, in the order the per-item CSV lists them
    target: str = ""  # the input attacks move where the task fixes it ("query"); empty: the run's --perturb

    @property
    def rows_file(self) -> str:
        """The run folder's per-item CSV: ``triplets.csv``, ``queries.csv``, ..."""
        return f"{self.items}.csv"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "row_columns": list(self.row_columns)}

    @classmethod
    def from_dict(cls, value: object) -> TaskInfo:
        """A record's task, or 2AFC's for a record written before tasks (or holding a damaged entry)."""
        if isinstance(value, dict) and all(isinstance(value.get(k), str) for k in ("name", "item", "items", "score")):
            columns = value.get("row_columns")
            own = tuple(str(c) for c in columns) if isinstance(columns, list) else ()
            return cls(
                value["name"], value["item"], value["items"], value["score"], own, str(value.get("target") or "")
            )
        return task_info(DEFAULT_TASK)


class Task:
    """Base of every task; subclasses set the class attributes and implement :meth:`batches`."""

    name: ClassVar[str]
    item: ClassVar[str]
    items: ClassVar[str]
    score_name: ClassVar[str]
    description: ClassVar[str] = ""
    #: The evaluations a run on this task's data plans when it names none.
    default_evaluations: ClassVar[tuple[str, ...]] = ()
    #: Per-item columns, in the order the run folder's per-item CSV lists them (other columns follow).
    row_columns: ClassVar[tuple[str, ...]] = ()
    #: The input its attacks and certificates move, where the task fixes it ("query"); empty where the run's
    #: ``--perturb`` chooses (2AFC: ref, x0, x1 or all three).
    target: ClassVar[str] = ""

    def batches(
        self,
        metric: PerceptualMetric,
        loader: DataLoader,
        device: torch.device,
        desc: str,
        metric_name: str,
        cache: EmbeddingCache | None = None,
    ) -> Iterator[Any]:
        """The loader's batches with their clean embeddings (computed once per metric, shared by every unit)."""
        raise NotImplementedError

    def score(self, rows: pd.DataFrame, split: str) -> list[dict[str, Any]]:
        """Score rows (split, evaluation, norm, eps, score, n): 100 x the mean 'agreement' of the items, groups
        size-weighted (what the runner checks every evaluation's scores against)."""
        from lipsim_bench.evaluations.twoafc import score_rows

        return score_rows(rows, split=split) if len(rows) else []

    @classmethod
    def info(cls) -> TaskInfo:
        return TaskInfo(cls.name, cls.item, cls.items, cls.score_name, tuple(cls.row_columns), cls.target)


TASKS: Registry[type[Task]] = Registry(
    "task", builtins=("lipsim_bench.tasks.*",), error=BenchError, hint="see `python run_bench.py list`"
)


def register_task(cls: T) -> T:
    """Class decorator: register a :class:`Task` subclass under its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise BenchError(f"@register_task takes a Task subclass, got {cls!r}")
    missing = [a for a in ("name", "item", "items", "score_name") if not isinstance(getattr(cls, a, None), str)]
    if missing:
        raise BenchError(f"task class {cls.__name__} needs a {missing[0]!r} (str); see docs/tasks.md")
    if getattr(cls, "batches", None) is Task.batches:
        raise BenchError(f"task {cls.name!r} ({cls.__name__}) does not define batches(); implement it")
    TASKS.add(cls.name, cls)
    return cls


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise BenchError(TASKS.unknown(name))
    return TASKS.get(name)()


def list_tasks() -> list[str]:
    return TASKS.names()


def task_info(name: str) -> TaskInfo:
    return get_task(name).info()


def evaluation_tasks(evaluation: object) -> tuple[str, ...]:
    """The tasks an evaluation scores (``Evaluation.tasks``)."""
    tasks = getattr(evaluation, "tasks", (DEFAULT_TASK,))
    return tuple(tasks) if isinstance(tasks, (tuple, list)) else (DEFAULT_TASK,)
