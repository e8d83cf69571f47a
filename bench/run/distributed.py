"""Sharding a run across processes with torch.distributed (``torchrun``), one GPU per process.

Every process evaluates the batches ``k`` with ``k % world_size == rank``: the same batches a
single process would form, so every per-triplet number (random starts are drawn per batch) is
identical to a one-process run. Rank 0 gathers the per-triplet rows, writes records and tables;
the others only compute. Objects travel over a gloo group, which works on CPU and beside NCCL.

Single process (no ``torchrun``): :class:`Shard` is rank 0 of 1 and every collective is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Sampler

from lipsim_bench.errors import BenchError


@dataclass
class Shard:
    """This process's place in the run: rank, world size, and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    _group: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self, requested: str) -> torch.device:
        """``cuda`` becomes ``cuda:<local rank>`` under torchrun: one GPU per process."""
        device = torch.device(requested)
        if self.distributed and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order), None elsewhere."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0, group=self._group)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self._group)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier(group=self._group)

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _torchrun_number(name: str, default: int) -> int:
    """WORLD_SIZE / LOCAL_RANK as torchrun sets them; anything else is one line naming the variable."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise BenchError(
            f"{name}={value!r} is not a whole number >= 0; torchrun sets it: unset it to run in one process"
        )
    return int(value)


def init_shard(device: str) -> Shard:
    """Join the process group torchrun describes (WORLD_SIZE > 1), or run alone."""
    world_size = _torchrun_number("WORLD_SIZE", 1)
    if world_size <= 1:
        return Shard()
    import torch.distributed as dist

    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    group = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
    return Shard(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=_torchrun_number("LOCAL_RANK", 0),
        _group=group,
    )


class ShardedBatchSampler(Sampler[list[int]]):
    """Consecutive batches of ``batch_size`` indices (the last may be short); keeps every ``world_size``-th."""

    def __init__(self, n: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.batch_size, self.rank, self.world_size = n, batch_size, rank, world_size

    def _batches(self) -> list[list[int]]:
        starts = range(0, self.n, self.batch_size)
        return [
            list(range(s, min(s + self.batch_size, self.n)))
            for k, s in enumerate(starts)
            if k % self.world_size == self.rank
        ]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def merge_shards(parts: list[Any] | None, batch_size: int) -> Any:
    """Per-triplet rows of every shard in single-process order: by batch, keeping order within a batch."""
    import numpy as np
    import pandas as pd

    from lipsim_bench.evaluations.base import POSITION

    frames = [p for p in parts or [] if p is not None and len(p)]
    if not frames:
        return pd.DataFrame()
    merged = pd.concat(frames, ignore_index=True)
    batch = merged[POSITION].to_numpy() // batch_size
    order = np.argsort(batch, kind="stable")
    return merged.iloc[order].drop(columns=[POSITION]).reset_index(drop=True)
