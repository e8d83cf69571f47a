"""The unit loop: for every planned unit, load its record or compute and store it. Nothing else.

Data flows one way: dataset -> metric.embed -> evaluation -> records. Tables and plots are the
report layer's job (``lipsim_bench.report``), called by the CLI and ``bench.evaluate`` on the records
this returns. Under torchrun every rank computes its share of each unit and rank 0 stores it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from lipsim_bench.datasets import TwoAFCDataset, create_dataset, dataset_task
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import ArtifactSink, Context, EmbeddingCache, Evaluation
from lipsim_bench.evaluations.smoothing_noise import clear_noise_cache
from lipsim_bench.io import atomic_write_text
from lipsim_bench.locations import results_root
from lipsim_bench.metrics import PerceptualMetric
from lipsim_bench.run.distributed import Shard, ShardedBatchSampler, merge_shards
from lipsim_bench.run.plan import (
    DataIdentity,
    PlannedUnit,
    build_metric,
    execution_order,
    metric_conventions,
    metric_label,
    plan_units,
    random_weights_apply,
    random_weights_note,
    seed_everything,
)
from lipsim_bench.run.records import RecordStore, Unit
from lipsim_bench.run.runlog import RunLog
from lipsim_bench.run.scorecheck import rows_problem, score_problem
from lipsim_bench.run.spec import RunSpec, check_subsample, resolve
from lipsim_bench.tasks import Task, get_task
from lipsim_bench.tasks.base import DEFAULT_TASK


class Store(Protocol):
    def load(self, unit: Unit) -> tuple[dict[str, Any], pd.DataFrame] | None: ...
    def save(self, unit: Unit, body: dict[str, Any], triplets: pd.DataFrame) -> dict[str, Any]: ...


@dataclass
class UnitResult:
    """A unit's record and per-triplet rows, and whether this run computed it."""

    record: dict[str, Any]
    rows: pd.DataFrame
    computed: bool


@dataclass
class RunOutcome:
    """What the loop produced, in table order (rank 0 only)."""

    out_dir: Path | None
    dataset: str
    split: str
    results: list[UnitResult] = field(default_factory=list)

    @property
    def reused(self) -> list[UnitResult]:
        return [r for r in self.results if not r.computed]


def default_out_dir(dataset: str, split: str) -> Path:
    """``results/<dataset>-<split>``: the same command writes to, and resumes, the same folder."""
    return results_root() / f"{dataset}-{split}"


def run_config(spec: RunSpec) -> dict[str, Any]:
    """The spec as records and run.log store it, metrics under their output names (random weights marked)."""
    return {**spec.as_dict(), "metrics": [metric_label(m) for m in spec.metrics]}


def prepare_out_dir(out_dir: Path) -> None:
    """Create the run folder and prove it takes a file now, before any unit is computed."""
    probe = out_dir / "records" / ".write-check"
    try:
        atomic_write_text(probe, "ok\n")
        probe.unlink()
    except OSError as exc:
        raise BenchError(
            f"cannot write to the run folder {out_dir} ({exc.strerror or exc}: {exc.filename or probe}); "
            "choose another --out, or fix its permissions or free space"
        ) from None


def make_loader(dataset: Dataset, batch_size: int, workers: int = 0, shard: Shard | None = None) -> DataLoader:
    """Consecutive batches in dataset order; under torchrun, this rank's share of them."""
    shard = shard or Shard()
    sampler = ShardedBatchSampler(len(dataset), batch_size, shard.rank, shard.world_size)
    # persistent workers keep their decoded-image caches from one unit to the next
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0)


def fetch_missing(spec: RunSpec) -> None:
    """Download the data, then the weights, a ``download`` run lacks (never weights with random weights)."""
    if not spec.download:
        return
    from lipsim_bench.run.fetch import ensure_dataset, ensure_weights
    from lipsim_bench.run.plan import random_weights_requested

    ensure_dataset(spec.dataset, spec.split, spec.n)
    if not random_weights_requested():
        for name in spec.metrics:
            ensure_weights(name)


def load_dataset(spec: RunSpec) -> TwoAFCDataset:
    """The run's triplets, every image checked to exist before any computation."""
    check_subsample(spec)
    full = create_dataset(spec.dataset, spec.split)
    if spec.n is not None and spec.n > len(full):
        print(
            f"warning: --n {spec.n} is more than the {len(full)} {get_task(dataset_task(spec.dataset)).items} of "
            f"{full.name} / {full.split}: all {len(full)} are used",
            file=sys.stderr,
        )
    dataset = full.head(spec.n).every(spec.every)
    dataset.check_files()
    return dataset


class _Metrics:
    """Builds each metric the first time a unit needs it (a fully stored metric is never built), and
    holds its clean embeddings for the units after the first."""

    def __init__(self, device: torch.device, seed: int, precision: str = "fp32", task: Task | None = None) -> None:
        self.device, self.seed, self.precision = device, seed, precision
        self.task = task or get_task(DEFAULT_TASK)  # embeds the run's items: its batches carry the clean embeddings
        self.name: str | None = None
        self.metric: PerceptualMetric | None = None
        self.embeddings = EmbeddingCache()

    def get(self, name: str) -> PerceptualMetric:
        if self.name != name:
            self.metric = None  # free the previous metric (and its embeddings) before building the next
            self.embeddings.clear()
            self.metric, self.name = build_metric(name, self.device, self.seed, self.precision), name
        assert self.metric is not None
        return self.metric


def run_units(spec: RunSpec, shard: Shard | None = None, store: Store | None = None) -> RunOutcome | None:
    """Load or compute every unit of ``spec``; rank 0 returns the records, other ranks None."""
    shard = shard or Shard()
    if shard.local_rank == 0:  # one process per machine fetches what that machine lacks
        fetch_missing(spec)
    shard.barrier()
    dataset = load_dataset(spec)
    resolved = resolve(spec, dataset.name, dataset.image_size)  # radii checked against the data's own size
    data = DataIdentity(dataset.name, dataset.split, spec.n, dataset.fingerprint())
    units = plan_units(spec, resolved, data)
    out_dir = spec.out or default_out_dir(dataset.name, dataset.split)
    store = store if store is not None else RecordStore(out_dir)
    on_disk = isinstance(store, RecordStore)
    if on_disk and shard.is_main:
        prepare_out_dir(out_dir)
    loader = make_loader(dataset, spec.batch_size, spec.workers, shard)
    log = RunLog(out_dir / "run.log", enabled=shard.is_main and on_disk)
    if isinstance(store, RecordStore):
        store.on_invalid = log.warn
    metrics = _Metrics(shard.device(spec.device), spec.seed, spec.precision, get_task(dataset_task(spec.dataset)))
    log.start(run_config(spec), len(dataset), shard.world_size, metrics.task.items)
    outcome = RunOutcome(out_dir if on_disk else None, dataset.name, dataset.split)
    read = artifacts_read(units, on_disk)
    done: dict[str, UnitResult | None] = {}
    try:
        for planned in execution_order(units):
            prior = done.get(planned.builds_on.key()) if planned.builds_on is not None else None
            inputs = {ref.address: done.get(unit.key()) for ref, unit in planned.depends}
            done[planned.unit.key()] = run_unit(planned, spec, metrics, loader, store, shard, log, prior, inputs, read)
    finally:
        clear_noise_cache()  # the smoothing normals shared by a run's units (up to 1 GiB): not kept past it
    outcome.results = [r for r in (done[u.unit.key()] for u in units) if r is not None]
    log.finish(out_dir, len(outcome.reused), len(outcome.results))
    return outcome if shard.is_main else None


def run_unit(
    planned: PlannedUnit,
    spec: RunSpec,
    metrics: _Metrics,
    loader: DataLoader,
    store: Store,
    shard: Shard,
    log: RunLog,
    prior: UnitResult | None = None,
    inputs: dict[tuple[str, str, Any], UnitResult | None] | None = None,
    read: frozenset[str] = frozenset(),
) -> UnitResult | None:
    """The record of one unit: stored, or computed (sharded), scored and stored now.

    ``prior`` is the unit it builds on and ``inputs`` the units it depends on, by address (rank 0's copies;
    every rank gets their rows); ``read``: keys of the units whose tensor files another unit reads."""
    stored = store.load(planned.unit) if shard.is_main else None
    if stored is not None and stored[0].get("applies") and not has_artifacts(store, planned, spec, read):
        stored = None  # the run keeps tensors this stored unit lacks: computed again
    if shard.broadcast(stored is not None):
        if stored is None:
            return None
        log.unit("reused", planned.unit, stored[0], None)
        return UnitResult(stored[0], stored[1], computed=False)
    started = time.perf_counter()
    evaluation, metric = planned.evaluation, None if planned.applies is False else metrics.get(planned.metric)
    applies = metric is not None and evaluation.applies(metric)
    rows = None
    prior_rows = (
        shard.broadcast(prior.rows if prior is not None and len(prior.rows) else None) if planned.builds_on else None
    )
    if applies and len(loader):
        seed_everything(planned.seed)  # the run's seed, or under --seeds this unit's
        ctx = Context(
            metrics.device,
            planned.seed,
            planned.metric,
            planned.threat,
            prior_rows,
            perturb=spec.perturb,
            inputs=dependency_rows(inputs or {}, shard),
            artifacts=artifact_sink(store, planned, spec, read),
            load_artifacts=artifact_reader(store, planned),
        )
        batches = metrics.task.batches(
            metric,
            loader,
            ctx.device,
            f"{planned.metric} {evaluation.label(planned.threat)}",
            planned.metric,
            metrics.embeddings,
        )
        rows = evaluation.run(metric, batches, ctx)
    parts = shard.gather(rows)
    if not shard.is_main:
        return None
    frame = merge_shards(parts, spec.batch_size)
    split, label = planned.unit.split, planned.unit.metric
    seconds = round(time.perf_counter() - started, 3)
    marked = [random_weights_note(planned.metric)] if random_weights_apply(planned.metric) else []
    scores = checked_scores(evaluation, frame, split, label, applies)
    body = {
        **planned.describe(),
        "task": metrics.task.info().as_dict(),
        "conventions": metric_conventions(planned.metric),
        "applies": applies,
        "scores": scores,
        "notes": marked + (evaluation.notes(label, frame) if applies else []),
        "rows": len(frame),
        "config": {**run_config(spec), "seed": planned.seed, "seconds": seconds, "world_size": shard.world_size},
    }
    record = store.save(planned.unit, body, frame)
    log.unit("computed", planned.unit, record, seconds)
    return UnitResult(record, frame, computed=True)


def dependency_rows(
    inputs: dict[tuple[str, str, Any], UnitResult | None], shard: Shard
) -> dict[tuple[str, str, Any], pd.DataFrame]:
    """The rows of the units a unit depends on, on every rank (a unit that did not apply, or has no rows, is left out)."""
    rows = {address: r.rows for address, r in inputs.items() if r is not None and len(r.rows)}
    return shard.broadcast(rows) if inputs else {}


def artifacts_read(units: list[PlannedUnit], on_disk: bool) -> frozenset[str]:
    """Keys of the units whose tensor files another unit of the run reads (``Evaluation.reads_artifacts``): they
    keep them without ``--save-adversarial``. Such a reader needs a run folder: one line, before any work."""
    readers = [p for p in units if p.evaluation.reads_artifacts]
    if readers and not on_disk:
        raise BenchError(
            f"evaluation {readers[0].evaluation.name!r} reads the adversarial examples other units store beside "
            "their records, which needs a run folder: give bench.evaluate out=FOLDER (the CLI always has one)"
        )
    return frozenset(unit.key() for p in readers for _, unit in p.depends)


def keeps_artifacts(planned: PlannedUnit, spec: RunSpec, read: frozenset[str] = frozenset()) -> bool:
    if not planned.evaluation.artifacts:
        return False
    return spec.save_adversarial or planned.unit.key() in read


def has_artifacts(store: Store, planned: PlannedUnit, spec: RunSpec, read: frozenset[str] = frozenset()) -> bool:
    """Whether a stored unit has every tensor file this run keeps (always true when it keeps none)."""
    if not keeps_artifacts(planned, spec, read) or not isinstance(store, RecordStore):
        return True
    return all(store.has_artifact(planned.unit, name) for name in planned.evaluation.artifacts)


def artifact_sink(
    store: Store, planned: PlannedUnit, spec: RunSpec, read: frozenset[str] = frozenset()
) -> ArtifactSink | None:
    """Where the unit's tensors go, when the run keeps them and has a folder to keep them in."""
    if not keeps_artifacts(planned, spec, read) or not isinstance(store, RecordStore):
        return None
    return lambda name, tensors: store.save_artifact(planned.unit, name, tensors)


def artifact_reader(store: Store, planned: PlannedUnit) -> Callable[[tuple[str, str, Any]], dict | None] | None:
    """Reads the tensors a dependency of the unit stored, by its address (None without a folder)."""
    if not isinstance(store, RecordStore) or not planned.depends:
        return None
    by_address = {ref.address: (ref, unit) for ref, unit in planned.depends}

    def read(address: tuple[str, str, Any]) -> dict | None:
        found = by_address.get(address)
        if found is None:
            return None
        ref, unit = found
        names = ref.evaluation.artifacts
        return store.load_artifact(unit, names[0]) if names else None

    return read


def checked_scores(
    evaluation: Evaluation, frame: pd.DataFrame, split: str, label: str, applies: bool
) -> list[dict[str, Any]]:
    """The unit's score rows, refused in one line naming the evaluation unless they are what its rows give, in 0..100."""
    kind = evaluation.kind.value
    problem = rows_problem(frame, kind, applies)
    scores: list[dict[str, Any]] = []
    if applies and problem is None:
        try:
            scores = evaluation.score(frame, split)
        except BenchError:
            raise
        except Exception as exc:
            problem = f"its score() raised {type(exc).__name__}: {exc}"
    problem = problem or score_problem(scores, frame, split, kind, applies)
    if problem:
        raise BenchError(
            f"evaluation {evaluation.name!r} on metric {label!r}: {problem}; fix the evaluation "
            "(a score is 100 x the mean 'agreement' of its per-triplet rows, one row per triplet)"
        )
    return scores
