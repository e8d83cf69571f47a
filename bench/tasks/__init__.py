"""Tasks: what one scored item is (a 2AFC triplet, a retrieval query, a kNN image), how its batches are embedded,
what its score is called and counts. A dataset family names its task, an evaluation the tasks it scores.

>>> from lipsim_bench.tasks import get_task
>>> get_task("2afc").item
'triplet'
"""

from lipsim_bench.tasks.base import TASKS, Task, TaskInfo, get_task, list_tasks, register_task, task_info

__all__ = ["TASKS", "Task", "TaskInfo", "get_task", "list_tasks", "register_task", "task_info"]
