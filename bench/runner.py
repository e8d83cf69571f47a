"""The runner: the one place that knows datasets, metrics, evaluations and records.

Data flows one way: dataset -> metric.embed -> decision -> evaluation -> records -> tables.
Each (metric, evaluation) unit is stored as soon as it finishes and skipped on a rerun.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from bench.datasets import TwoAFCDataset, create_dataset
from bench.errors import BenchError
from attacks.direct import DirectAttack
from bench.evaluations import DEFAULT_ATTACK_EPS, EVALUATIONS, FALLBACK_ATTACK_EPS
from bench.histogram import DEFAULT_HISTOGRAM_EPS, direct_distances, plot_histograms
from bench.records import RecordStore, Unit, atomic_write_text
from bench.report import SCORE_COLUMNS, scores_table, to_markdown
from bench.scoring import score_rows
from metrics import PerceptualMetric, create_metric

TRIPLET_COLUMNS = ["metric", "dataset", "split", "group", "evaluation", "norm", "eps", "id", "p", "d0", "d1", "agreement", "correct"]


@dataclass
class RunConfig:
    """Everything a run needs; the CLI builds it, tests build it directly."""

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
    steps: int = 100
    restarts: int = 1
    certify: bool = False
    certify_eps: list[float] | None = None
    histogram: bool = False
    histogram_eps: float | None = None
    workers: int = 0


def seed_everything(seed: int) -> None:
    """Seed every generator a unit may touch, so its numbers do not depend on what ran before it."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_loader(dataset: TwoAFCDataset, config: RunConfig) -> DataLoader:
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=False, num_workers=config.workers)


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


def planned_units(config: RunConfig, dataset: TwoAFCDataset) -> list[tuple[str, float | None]]:
    """(evaluation, eps) units every metric goes through, in table order; attacks get one unit per eps."""
    names = ["natural"] + (["certified"] if config.certify else []) + list(config.attacks)
    attack_eps = config.eps or list(DEFAULT_ATTACK_EPS.get(dataset.name, FALLBACK_ATTACK_EPS))
    units: list[tuple[str, float | None]] = []
    for name in names:
        if name not in EVALUATIONS:
            raise BenchError(f"evaluation {name!r} is not implemented in this version of lipsim-bench")
        units += [(name, eps) for eps in attack_eps] if EVALUATIONS[name].per_eps else [(name, None)]
    return units


def default_out_dir(config: RunConfig, dataset: TwoAFCDataset) -> Path:
    """``results/<dataset>-<split>``: the same command writes to, and resumes, the same folder."""
    return Path("results") / f"{dataset.name}-{dataset.split}"


def write_histograms(config: RunConfig, dataset: TwoAFCDataset, loader: DataLoader, device: torch.device,
                     store: RecordStore, out_dir: Path, config_dict: dict) -> None:
    """Direct-attack distances per metric (stored as units, so reruns resume), then CSV and PNG/PDF."""
    eps = config.histogram_eps if config.histogram_eps is not None else DEFAULT_HISTOGRAM_EPS.get(dataset.name, 1.0)
    attack = DirectAttack(eps=eps, steps=config.steps, seed=config.seed)
    frames: dict[str, pd.DataFrame] = {}
    for metric_name in config.metrics:
        unit = Unit(metric_name, config.dataset, dataset.split, config.n, "direct", {**attack.config()})
        stored = store.load(unit)
        if stored is None:
            metric = create_metric(metric_name).to(device)
            seed_everything(config.seed)
            frame = direct_distances(metric, loader, device, attack, f"{metric_name} direct eps {eps:g}")
            store.save(unit, [], frame, config_dict)
        else:
            frame = stored[1]
        frames[metric_name] = frame.assign(metric=metric_name)
    atomic_write_text(out_dir / "histogram.csv", pd.concat(frames.values(), ignore_index=True).to_csv(index=False))
    plot_histograms(frames, out_dir / "histogram", eps)


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
    if config.certify and config.certify_eps is None and config.eps is not None:
        config.certify_eps = config.eps  # --eps sets both, --certify-eps only the certificates
    units = planned_units(config, dataset)
    out_dir = config.out or default_out_dir(config, dataset)
    store = RecordStore(out_dir)
    device = torch.device(config.device)
    loader = make_loader(dataset, config)
    config_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}

    score_parts: list[pd.DataFrame] = []
    triplet_parts: list[pd.DataFrame] = []
    notes: list[str] = []
    for metric_name in config.metrics:
        metric: PerceptualMetric | None = None
        for evaluation, eps in units:
            spec = EVALUATIONS[evaluation]
            unit = Unit(
                metric=metric_name,
                dataset=config.dataset,
                split=dataset.split,
                n=config.n,
                evaluation=evaluation,
                settings={"seed": config.seed, "eps": eps, **{f: getattr(config, f) for f in spec.settings}},
            )
            stored = store.load(unit)
            if stored is None:
                if metric is None:
                    metric = create_metric(metric_name).to(device)
                started = time.perf_counter()
                if spec.applies_to(metric):
                    seed_everything(config.seed)
                    triplets = spec.run(metric, loader, device, config, f"{metric_name} {evaluation}", eps)
                    rows = score_rows(triplets, split=dataset.split)
                else:  # stored too, so a rerun need not build the metric to find out again
                    triplets, rows = pd.DataFrame(columns=TRIPLET_COLUMNS[3:]), []
                seconds = round(time.perf_counter() - started, 3)
                record = store.save(unit, rows, triplets, {**config_dict, "seconds": seconds})
            else:
                record, triplets = stored
            if not record["scores"]:
                note = f"{evaluation} does not apply to {metric_name}"
                notes += [] if note in notes else [note]
                continue
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
    footer = "\n".join(f"- {line}" for line in notes + certificate_notes(triplets_all) + monotonicity_notes(scores, dataset.split))
    markdown = f"{markdown}\n\n{footer}" if footer else markdown
    atomic_write_text(out_dir / "scores.md", f"{title}\n\n{markdown}\n")
    if config.histogram:
        write_histograms(config, dataset, loader, device, store, out_dir, config_dict)
    return RunResult(out_dir, scores, table, f"{title}\n\n{markdown}")
