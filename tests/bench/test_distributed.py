"""Sharding: the batches of K processes are exactly one process's batches, merged back in order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lipsim_bench.evaluations import POSITION
from lipsim_bench.run.distributed import ShardedBatchSampler, merge_shards

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("n,batch,world", [(10, 3, 2), (7, 7, 3), (1, 4, 2), (12, 4, 4)])
def test_shards_partition_the_single_process_batches(n: int, batch: int, world: int) -> None:
    single = list(ShardedBatchSampler(n, batch))
    shards = [list(ShardedBatchSampler(n, batch, rank, world)) for rank in range(world)]
    assert sorted(b for shard in shards for b in shard) == single  # same batches, each exactly once
    assert all(len(ShardedBatchSampler(n, batch, r, world)) == len(s) for r, s in enumerate(shards))


def _rows(batches: list[list[int]], per_triplet: int = 2) -> pd.DataFrame:
    """Per-triplet rows as an evaluation writes them: batch by batch, several rows per triplet."""
    rows = [{POSITION: i, "id": f"t{i}", "k": k} for b in batches for k in range(per_triplet) for i in b]
    return pd.DataFrame(rows)


def test_merge_restores_single_process_order() -> None:
    n, batch, world = 11, 3, 3
    single = _rows(list(ShardedBatchSampler(n, batch))).drop(columns=[POSITION])
    parts = [_rows(list(ShardedBatchSampler(n, batch, r, world))) for r in range(world)]
    parts.insert(1, None)  # a rank with no batches sends nothing
    merged = merge_shards(parts, batch)
    pd.testing.assert_frame_equal(merged, single)
    naive = pd.concat([p for p in parts if p is not None], ignore_index=True).drop(columns=[POSITION])
    assert not naive.equals(single)  # the check above can fail: rank order is not dataset order


def _run(args: list[str], *, torchrun: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"]
        if torchrun
        else [sys.executable]
    )
    return subprocess.run(
        launcher + ["run_bench.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow  # two torchrun worker processes (about 15-25 s); the shard logic is tested in-process above
def test_torchrun_two_cpu_processes_equal_one(night_tree: Path, tmp_path: Path) -> None:
    """gloo on CPU: 2 processes write byte-identical scores, per-triplet rows and histograms."""
    common = [
        "--metrics",
        "pixel-l2,lipsim-tiny",
        "--dataset",
        f"night:{night_tree}",
        "--batch-size",
        "2",
        "--steps",
        "3",
        "--histogram",
    ]
    one = _run(common + ["--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr[-2000:]
    two = _run(common + ["--out", str(tmp_path / "two")], torchrun=2)
    assert two.returncode == 0, two.stderr[-2000:]
    for name in ("scores.csv", "triplets.csv", "histogram.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert "2 process(es)" in (tmp_path / "two" / "run.log").read_text()
