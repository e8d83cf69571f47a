"""The runner: the one place that knows datasets, metrics, evaluations and records.

Data flows one way: dataset -> metric.embed -> decision -> evaluation -> records -> tables.
Each (metric, evaluation) unit is stored as soon as it finishes and skipped on a rerun.
"""

from __future__ import annotations

import inspect
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from attacks.base import ThreatModel
from attacks.direct import DirectAttack
from bench.datasets import TwoAFCDataset, create_dataset
from bench.distributed import Shard, ShardedBatchSampler
from bench.errors import BenchError
from bench.evaluations import EVALUATIONS, default_attack_eps
from bench.histogram import DEFAULT_HISTOGRAM_EPS, direct_distances, plot_histograms
from bench.records import RecordStore, Unit, atomic_write_text
from bench.report import SCORE_COLUMNS, TablesDocument, provenance_line, render_tables
from bench.runlog import RunLog
from bench.scoring import score_rows
from metrics import PerceptualMetric, create_metric, get_metric_spec

POSITION = "position"  # per-triplet column: the triplet's index in the dataset, for merging shards
TRIPLET_COLUMNS = ["metric", "dataset", "split", "group", "evaluation", "norm", "eps", "id", "p", "d0", "d1", "agreement", "correct"]


@dataclass
class RunConfig:
    """Everything a run needs; the CLI builds it, tests build it directly.

    ``threats`` lists (norm, radii) pairs for the attacks; without it ``norm`` and ``eps`` (or the
    dataset's default radii) give a single one.
    """

    metrics: list[str]
    dataset: str = "sample"
    split: str | None = None
    n: int | None = None
    batch_size: int = 100
    device: str = "cpu"
    seed: int = 0
    out: Path | None = None
    attacks: list[str] = field(default_factory=list)
    norm: str = "l2"
    eps: list[float] | None = None
    threats: list[tuple[str, list[float]]] | None = None
    steps: int = 100
    restarts: int = 1
    certify: bool = False
    certify_eps: list[float] | None = None
    histogram: bool = False
    histogram_eps: float | None = None
    workers: int = 0
    download: bool = False

    def __post_init__(self) -> None:
        if self.certify and self.certify_eps is None and self.eps is not None and self.norm == "l2" and not self.threats:
            self.certify_eps = list(self.eps)  # --eps sets both, --certify-eps only the certificates


#: Test-only switch: build every metric that can with random weights (``pretrained=False``), so the
#: whole protocol runs offline on real architectures. Results say so in their key and records.
RANDOM_WEIGHTS_ENV = "LIPSIM_BENCH_RANDOM_WEIGHTS"


def random_weights_requested() -> bool:
    return os.environ.get(RANDOM_WEIGHTS_ENV, "").strip() not in ("", "0")


def _takes_pretrained(name: str) -> bool:
    return "pretrained" in inspect.signature(get_metric_spec(name).factory).parameters


def metric_weights_id(name: str, seed: int) -> str:
    """What identifies the weights of ``name`` in this run (part of every unit key)."""
    if random_weights_requested() and _takes_pretrained(name):
        return f"random-init(seed={seed})"
    return get_metric_spec(name).weights_id()


def build_metric(name: str, device: torch.device, seed: int) -> PerceptualMetric:
    """The metric on ``device``; seeded, so a random initialisation is the same on every run and rank."""
    seed_everything(seed)
    if random_weights_requested() and _takes_pretrained(name):
        return create_metric(name, pretrained=False).to(device)
    return create_metric(name).to(device)


def seed_everything(seed: int) -> None:
    """Seed every generator a unit may touch, so its numbers do not depend on what ran before it."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_loader(dataset: TwoAFCDataset, config: RunConfig, shard: Shard | None = None) -> DataLoader:
    """Consecutive batches in dataset order; under torchrun, this rank's share of them."""
    shard = shard or Shard()
    sampler = ShardedBatchSampler(len(dataset), config.batch_size, shard.rank, shard.world_size)
    # persistent workers keep their decoded-image caches from one unit to the next
    return DataLoader(dataset, batch_sampler=sampler, num_workers=config.workers, persistent_workers=config.workers > 0)


def certificate_notes(triplets: pd.DataFrame) -> list[str]:
    """How the certified radii compare with the paper's formula, per certified metric."""
    if "radius_paper" not in triplets.columns:
        return []
    lines = []
    certified = triplets[(triplets["evaluation"] == "certified") & triplets["radius_paper"].notna()]
    for metric, part in certified.groupby("metric", sort=False):
        part = part.drop_duplicates("id")
        exceeds = int((part["radius_paper"] > part["radius"] * (1 + 1e-9)).sum())
        lines.append(
            f"{metric}: median sound radius {part['radius'].median():.3f}, median ||e(x_ref)|| {part['ref_norm'].median():.3f}; "
            f"the paper's formula exceeds the sound radius on {exceeds}/{len(part)} triplets (it is unsound when ||e(x_ref)|| < 1)"
        )
    return lines


def monotonicity_notes(scores: pd.DataFrame, split: str) -> list[str]:
    """Robust and certified scores must not rise with eps; a rise is reported, never hidden."""
    lines = []
    rows = scores[(scores["split"] == split) & (scores["evaluation"] != "natural")]
    for (metric, evaluation, norm), part in rows.groupby(["metric", "evaluation", "norm"], sort=False):
        part = part.sort_values("eps")
        rises = [(a, b) for a, b in zip(part.itertuples(), part.iloc[1:].itertuples()) if b.score > a.score + 1e-9]
        for a, b in rises:
            lines.append(
                f"WARNING: {metric} {evaluation} {norm}: score rises with eps ({a.score:.2f} at {a.eps:g} -> "
                f"{b.score:.2f} at {b.eps:g}); the attack is weaker at the larger eps: try more --restarts or --steps"
            )
    return lines


def attack_threats(config: RunConfig, dataset_name: str) -> list[ThreatModel]:
    """The attacks' threat models in table order: ``threats``, else ``norm`` x (``eps`` or the defaults)."""
    pairs = config.threats or [(config.norm, config.eps or list(default_attack_eps(dataset_name, config.norm)))]
    return [ThreatModel(norm, float(eps)) for norm, radii in pairs for eps in radii]  # type: ignore[arg-type]


def planned_units(config: RunConfig, dataset_name: str) -> list[tuple[str, ThreatModel | None]]:
    """(evaluation, threat model) units every metric goes through, in table order; attacks get one per threat."""
    names = ["natural"] + (["certified"] if config.certify else []) + list(config.attacks)
    threats = attack_threats(config, dataset_name)
    units: list[tuple[str, ThreatModel | None]] = []
    for name in names:
        if name not in EVALUATIONS:
            raise BenchError(f"evaluation {name!r} is not implemented in this version of lipsim-bench")
        units += [(name, t) for t in threats] if EVALUATIONS[name].per_eps else [(name, None)]
    return units


def make_unit(config: RunConfig, split: str, metric: str, weights: str, evaluation: str, threat: ThreatModel | None) -> Unit:
    """The key of one unit: everything that changes its numbers (seed, weights, threat, attack settings)."""
    spec = EVALUATIONS[evaluation]
    settings: dict[str, Any] = {"seed": config.seed, "weights": weights, "eps": threat.eps if threat else None}
    if threat is not None:
        settings["norm"] = threat.norm
    settings.update({f: getattr(config, f) for f in spec.settings})
    return Unit(metric=metric, dataset=config.dataset, split=split, n=config.n, evaluation=evaluation, settings=settings)


def merge_shards(parts: list[pd.DataFrame], batch_size: int) -> pd.DataFrame:
    """Per-triplet rows of every shard in single-process order: by batch, keeping order within a batch."""
    frames = [p for p in parts if p is not None and len(p)]
    if not frames:
        return pd.DataFrame(columns=TRIPLET_COLUMNS[3:])
    merged = pd.concat(frames, ignore_index=True)
    batch = merged[POSITION].to_numpy() // batch_size
    order = np.argsort(batch, kind="stable")
    return merged.iloc[order].drop(columns=[POSITION]).reset_index(drop=True)


def default_out_dir(dataset: str, split: str) -> Path:
    """``results/<dataset>-<split>``: the same command writes to, and resumes, the same folder."""
    return Path("results") / f"{dataset}-{split}"


def write_histograms(config: RunConfig, dataset: TwoAFCDataset, loader: DataLoader, device: torch.device,
                     store: RecordStore, out_dir: Path, config_dict: dict, shard: Shard) -> None:
    """Direct-attack distances per metric (stored as units, so reruns resume), then CSV and PNG/PDF."""
    eps = config.histogram_eps if config.histogram_eps is not None else DEFAULT_HISTOGRAM_EPS.get(dataset.name, 1.0)
    attack = DirectAttack(eps=eps, steps=config.steps, seed=config.seed)
    frames: dict[str, pd.DataFrame] = {}
    for metric_name in config.metrics:
        weights = metric_weights_id(metric_name, config.seed)
        unit = Unit(metric_name, config.dataset, dataset.split, config.n, "direct", {**attack.config(), "weights": weights})
        stored = store.load(unit) if shard.is_main else None
        if not shard.broadcast(stored is not None):
            metric = build_metric(metric_name, device, config.seed)
            seed_everything(config.seed)
            part = direct_distances(metric, loader, device, attack, f"{metric_name} direct eps {eps:g}") if len(loader) else None
            parts = shard.gather(part)
            if not shard.is_main:
                continue
            frame = merge_shards(parts, config.batch_size)
            store.save(unit, [], frame, config_dict)
        elif shard.is_main:
            frame = stored[1]
        else:
            continue
        frames[metric_name] = frame.assign(metric=metric_name)
    if shard.is_main:
        atomic_write_text(out_dir / "histogram.csv", pd.concat(frames.values(), ignore_index=True).to_csv(index=False))
        plot_histograms(frames, out_dir / "histogram", eps)


@dataclass
class RunResult:
    out_dir: Path
    scores: pd.DataFrame
    table: pd.DataFrame
    markdown: str


def fetch_missing(config: RunConfig) -> None:
    """Download the data, then the weights, a ``download`` run lacks (never weights in the random-weights mode).

    Data first: NIGHT's data.csv is a few MB, and its failure is the clearer first message offline.
    """
    if not config.download:
        return
    from bench.downloads import ensure_dataset, ensure_weights

    ensure_dataset(config.dataset, config.split, config.n)
    if not random_weights_requested():
        for name in config.metrics:
            ensure_weights(name)


def load_dataset(config: RunConfig) -> TwoAFCDataset:
    """The run's triplets, every image checked to exist before any computation."""
    dataset = create_dataset(config.dataset, config.split).head(config.n)
    dataset.check_files()
    return dataset


def run_benchmark(config: RunConfig, shard: Shard | None = None) -> RunResult | None:
    """Evaluate every metric of ``config``; write scores, triplets, records and run.log (rank 0).

    Under torchrun every rank computes its share of each unit and rank 0 writes; other ranks
    return None.
    """
    shard = shard or Shard()
    if shard.local_rank == 0:  # one process per machine fetches what that machine lacks
        fetch_missing(config)
    shard.barrier()
    dataset = load_dataset(config)
    units = planned_units(config, dataset.name)
    out_dir = config.out or default_out_dir(dataset.name, dataset.split)
    store = RecordStore(out_dir)
    device = shard.device(config.device)
    loader = make_loader(dataset, config, shard)
    config_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    log = RunLog(out_dir / "run.log", enabled=shard.is_main)
    log.start(config_dict, len(dataset), shard.world_size)

    score_parts: list[pd.DataFrame] = []
    triplet_parts: list[pd.DataFrame] = []
    notes: list[str] = []
    for metric_name in config.metrics:
        metric: PerceptualMetric | None = None
        weights = metric_weights_id(metric_name, config.seed)
        for evaluation, threat in units:
            spec = EVALUATIONS[evaluation]
            unit = make_unit(config, dataset.split, metric_name, weights, evaluation, threat)
            stored = store.load(unit) if shard.is_main else None
            if not shard.broadcast(stored is not None):
                if metric is None:
                    metric = build_metric(metric_name, device, config.seed)
                started = time.perf_counter()
                part = None
                if spec.applies_to(metric) and len(loader):
                    seed_everything(config.seed)
                    part = spec.run(metric, loader, device, config, f"{metric_name} {evaluation}", threat)
                parts = shard.gather(part)
                if not shard.is_main:
                    continue
                triplets = merge_shards(parts, config.batch_size)
                rows = score_rows(triplets, split=dataset.split) if spec.applies_to(metric) else []
                seconds = round(time.perf_counter() - started, 3)
                record = store.save(unit, rows, triplets, {**config_dict, "seconds": seconds, "world_size": shard.world_size})
                log.unit("computed", unit, threat, record, seconds)
            else:
                if not shard.is_main:
                    continue
                record, triplets = stored
                log.unit("reused", unit, threat, record, None)
            if not record["scores"]:
                note = not_applicable_note(evaluation, metric_name)
                notes += [] if note in notes else [note]
                continue
            meta = {"metric": metric_name, "dataset": dataset.name, "split": dataset.split}
            score_parts.append(pd.DataFrame([{**meta, **row} for row in record["scores"]]))
            triplet_parts.append(triplets.assign(**meta))
        del metric

    if config.histogram:
        write_histograms(config, dataset, loader, device, store, out_dir, config_dict, shard)
    if not shard.is_main:
        return None
    scores = pd.concat(score_parts, ignore_index=True)[SCORE_COLUMNS]
    triplets = pd.concat(triplet_parts, ignore_index=True)
    document = write_tables(out_dir, dataset.name, dataset.split, scores, triplets, notes, provenance_line(out_dir / "records"))
    log.finish(out_dir)
    return RunResult(out_dir, scores, document.table, document.markdown)


def not_applicable_note(evaluation: str, metric: str) -> str:
    """The table note for a unit stored without scores (e.g. a certificate for a metric without a bound)."""
    return f"{evaluation} does not apply to {metric}"


def write_tables(out_dir: Path, dataset: str, split: str, scores: pd.DataFrame, triplets: pd.DataFrame,
                 notes: list[str], provenance: str) -> TablesDocument:
    """scores.csv, triplets.csv, scores.md and scores.tex: what a run and ``report`` write alike."""
    atomic_write_text(out_dir / "scores.csv", scores.to_csv(index=False))
    if len(triplets):
        extra = [c for c in triplets.columns if c not in TRIPLET_COLUMNS]
        triplets = triplets[TRIPLET_COLUMNS + extra]
        atomic_write_text(out_dir / "triplets.csv", triplets.to_csv(index=False))
    footer = notes + certificate_notes(triplets) + monotonicity_notes(scores, split)
    document = render_tables(scores, dataset, split, footer, provenance)
    atomic_write_text(out_dir / "scores.md", document.markdown + "\n")
    atomic_write_text(out_dir / "scores.tex", document.latex + "\n")
    return document
