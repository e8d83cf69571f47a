"""The runner: the one place that knows datasets, metrics, evaluations and records.

Data flows one way: dataset -> metric.embed -> decision -> evaluation -> records -> tables.
Each (metric, evaluation) unit is stored as soon as it finishes and skipped on a rerun.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bench.datasets import TwoAFCDataset, create_dataset
from bench.errors import BenchError
from bench.records import RecordStore, Unit, atomic_write_text
from bench.report import SCORE_COLUMNS, scores_table, to_markdown
from bench.scoring import score_rows, twoafc_agreement
from metrics import PerceptualMetric, create_metric

TRIPLET_COLUMNS = ["metric", "dataset", "split", "group", "evaluation", "norm", "eps", "id", "p", "d0", "d1", "agreement", "correct"]


@dataclass
class RunConfig:
    """Everything a run needs; the CLI builds it, tests build it directly."""

    metrics: list[str]
    dataset: str = "sample"
    split: str | None = None
    n: int | None = None
    batch_size: int = 32
    device: str = "cpu"
    seed: int = 0
    out: Path | None = None
    attacks: list[str] = field(default_factory=list)
    norm: str = "l2"
    eps: list[float] | None = None
    steps: int = 100
    restarts: int = 1
    certify: bool = False
    workers: int = 0


def seed_everything(seed: int) -> None:
    """Seed every generator a unit may touch, so its numbers do not depend on what ran before it."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_loader(dataset: TwoAFCDataset, config: RunConfig) -> DataLoader:
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=False, num_workers=config.workers)


def natural_triplets(metric: PerceptualMetric, loader: DataLoader, device: torch.device, desc: str) -> pd.DataFrame:
    """Distances of every triplet under ``metric`` and their agreement with people."""
    parts: list[pd.DataFrame] = []
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False):
        ref, x0, x1 = (batch[k].to(device) for k in ("ref", "x0", "x1"))
        with torch.no_grad():
            e_ref, e0, e1 = metric.embed(torch.cat([ref, x0, x1])).chunk(3)
            d0, d1 = metric.distance(e_ref, e0).cpu(), metric.distance(e_ref, e1).cpu()
        bad = ~(torch.isfinite(d0) & torch.isfinite(d1))
        if bad.any():
            first = batch["id"][int(bad.nonzero()[0])]
            raise BenchError(f"metric {desc.split()[0]!r} gave a non-finite distance (NaN/inf) on triplet {first}; check its weights")
        agreement = twoafc_agreement(d0, d1, batch["p"])
        parts.append(
            pd.DataFrame(
                {
                    "group": list(batch["group"]),
                    "id": list(batch["id"]),
                    "p": batch["p"].double().numpy(),
                    "d0": d0.double().numpy(),
                    "d1": d1.double().numpy(),
                    "agreement": agreement.numpy(),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "evaluation", "natural")
    frame.insert(1, "norm", None)
    frame.insert(2, "eps", np.nan)
    frame["correct"] = frame["agreement"] > 0.5
    return frame


Evaluation = Callable[[PerceptualMetric, DataLoader, torch.device, RunConfig, str], pd.DataFrame]


def _natural(metric: PerceptualMetric, loader: DataLoader, device: torch.device, config: RunConfig, desc: str) -> pd.DataFrame:
    return natural_triplets(metric, loader, device, desc)


#: evaluation name -> (function, the config fields that change its numbers).
EVALUATIONS: dict[str, tuple[Evaluation, tuple[str, ...]]] = {"natural": (_natural, ())}


def planned_evaluations(config: RunConfig) -> list[str]:
    """Evaluations this run performs for every metric, in table order."""
    names = ["natural"]
    if config.certify:
        names.append("certified")
    names += list(config.attacks)
    for name in names:
        if name not in EVALUATIONS:
            raise BenchError(f"evaluation {name!r} is not implemented in this version of lipsim-bench")
    return names


def default_out_dir(config: RunConfig, dataset: TwoAFCDataset) -> Path:
    """``results/<dataset>-<split>``: the same command writes to, and resumes, the same folder."""
    return Path("results") / f"{dataset.name}-{dataset.split}"


@dataclass
class RunResult:
    out_dir: Path
    scores: pd.DataFrame
    table: pd.DataFrame
    markdown: str


def run_benchmark(config: RunConfig) -> RunResult:
    """Evaluate every metric of ``config`` and write scores.csv, scores.md, triplets.csv and records."""
    dataset = create_dataset(config.dataset, config.split).head(config.n)
    dataset.check_files()
    evaluations = planned_evaluations(config)
    out_dir = config.out or default_out_dir(config, dataset)
    store = RecordStore(out_dir)
    device = torch.device(config.device)
    loader = make_loader(dataset, config)
    config_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}

    score_parts: list[pd.DataFrame] = []
    triplet_parts: list[pd.DataFrame] = []
    for metric_name in config.metrics:
        metric: PerceptualMetric | None = None
        for evaluation in evaluations:
            fn, fields = EVALUATIONS[evaluation]
            unit = Unit(
                metric=metric_name,
                dataset=config.dataset,
                split=dataset.split,
                n=config.n,
                evaluation=evaluation,
                settings={"seed": config.seed, **{f: getattr(config, f) for f in fields}},
            )
            stored = store.load(unit)
            if stored is None:
                if metric is None:
                    metric = create_metric(metric_name).to(device)
                seed_everything(config.seed)
                started = time.perf_counter()
                triplets = fn(metric, loader, device, config, f"{metric_name} {evaluation}")
                rows = score_rows(triplets, split=dataset.split)
                record = store.save(unit, rows, triplets, {**config_dict, "seconds": round(time.perf_counter() - started, 3)})
            else:
                record, triplets = stored
            meta = {"metric": metric_name, "dataset": dataset.name, "split": dataset.split}
            score_parts.append(pd.DataFrame([{**meta, **row} for row in record["scores"]]))
            triplet_parts.append(triplets.assign(**meta))
        del metric

    scores = pd.concat(score_parts, ignore_index=True)[SCORE_COLUMNS]
    triplets_all = pd.concat(triplet_parts, ignore_index=True)
    extra = [c for c in triplets_all.columns if c not in TRIPLET_COLUMNS]
    triplets_all = triplets_all[TRIPLET_COLUMNS + extra]
    table = scores_table(scores, dataset.split)
    markdown = to_markdown(table)
    atomic_write_text(out_dir / "scores.csv", scores.to_csv(index=False))
    atomic_write_text(out_dir / "triplets.csv", triplets_all.to_csv(index=False))
    n = int(scores.loc[(scores["split"] == dataset.split) & (scores["evaluation"] == "natural"), "n"].max())
    title = f"2AFC score (%) on {dataset.name} / {dataset.split}, n = {n} triplets"
    atomic_write_text(out_dir / "scores.md", f"{title}\n\n{markdown}\n")
    return RunResult(out_dir, scores, table, f"{title}\n\n{markdown}")
