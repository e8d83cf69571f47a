"""Tables from records alone: ``run_bench.py report DIR...`` merges the records of one or more runs.

Each record holds its unit (metric, dataset, split, evaluation, settings), its score rows and the
name of its per-triplet CSV. A run folder can hold records of earlier settings too (another
``--steps``, other weights); when two records give the same cell (metric, split, evaluation, norm,
eps), the newest wins and the footer says how many were superseded, so nothing is silently mixed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.records import RECORD_FORMAT
from bench.report import SCORE_COLUMNS, TablesDocument, headline_split, provenance_line
from bench.runner import not_applicable_note, write_tables

CELL = ["metric", "dataset", "split", "evaluation", "norm", "eps"]


@dataclass
class Collected:
    """Score rows and per-triplet rows of every usable record, with what was left out and why."""

    scores: pd.DataFrame
    triplets: pd.DataFrame
    notes: list[str]
    records_dirs: list[Path]


def _records_dir(run_dir: Path) -> Path:
    folder = run_dir / "records"
    if not folder.is_dir():
        raise BenchError(f"{run_dir} has no records/ folder; give the folder of a run (e.g. results/sample-test)")
    return folder


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if record.get("format") == RECORD_FORMAT and "unit" in record else None


def _unit_rank(record: dict) -> tuple:
    """Where the runner puts a unit: natural, certified, then each attack per threat model, by eps."""
    unit, config = record["unit"], record.get("config") or {}
    evaluation, settings = unit["evaluation"], unit.get("settings") or {}
    attacks = list(config.get("attacks") or [])
    if evaluation in ("natural", "certified"):
        return (0 if evaluation == "natural" else 1, 0, 0.0)
    norms = [t[0] for t in config.get("threats") or []] or [config.get("norm") or "l2"]
    norm = settings.get("norm")
    return (2 + (attacks.index(evaluation) if evaluation in attacks else len(attacks)),
            norms.index(norm) if norm in norms else len(norms), float(settings.get("eps") or 0.0))


def collect_records(run_dirs: list[Path]) -> Collected:
    """Every record's score rows (newest per cell) and its triplets, in the order runs list metrics."""
    score_rows: list[dict] = []
    triplet_parts: list[tuple[str, tuple, pd.DataFrame]] = []
    not_applicable: list[str] = []
    metric_order: list[str] = []  # the runs' own --metrics order, so merged tables read like the runs'
    skipped = 0
    folders = [_records_dir(d) for d in run_dirs]
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            record = _read(path)
            if record is None:
                skipped += 1
                continue
            unit = record["unit"]
            metric_order += [m for m in (record.get("config") or {}).get("metrics", []) if m not in metric_order]
            meta = {"metric": unit["metric"], "dataset": unit["dataset"].partition(":")[0]}
            stamp = (record.get("provenance") or {}).get("time", "")
            rank = _unit_rank(record)
            for row in record.get("scores", []):
                score_rows.append({**meta, **row, "_time": stamp, "_record": str(path), "_rank": rank})
            if not record.get("scores") and unit["evaluation"] != "direct":  # direct units feed histograms only
                note = not_applicable_note(unit["evaluation"], unit["metric"])
                not_applicable += [] if note in not_applicable else [note]
            if record.get("scores"):
                csv = path.with_name(record.get("triplets_file", ""))
                if csv.is_file():
                    frame = pd.read_csv(csv, dtype={"id": str, "group": str})
                    frame = frame.assign(metric=unit["metric"], dataset=meta["dataset"], split=unit["split"], _record=str(path))
                    triplet_parts.append((unit["metric"], rank, frame))
    if not score_rows:
        raise BenchError(f"no usable records in {', '.join(map(str, run_dirs))}; run the benchmark first")
    scores = pd.DataFrame(score_rows)
    scores["eps"] = scores["eps"].astype(float)
    order = metric_order + [m for m in dict.fromkeys(scores["metric"]) if m not in metric_order]
    newest = scores.sort_values("_time", kind="stable").drop_duplicates(CELL, keep="last")
    superseded = sorted(set(scores["_record"]) - set(newest["_record"]))
    newest = newest.assign(_order=newest["metric"].map(order.index)).sort_values(["_order", "_rank"], kind="stable")
    notes = list(not_applicable)
    if superseded:
        notes.append(f"{len(superseded)} older record(s) for the same cells were superseded by newer ones")
    if skipped:
        notes.append(f"{skipped} unreadable or old-format record(s) ignored")
    triplet_parts.sort(key=lambda part: (order.index(part[0]), part[1]))  # the runner's order, so columns line up too
    triplets = pd.concat([frame for *_, frame in triplet_parts], ignore_index=True) if triplet_parts else pd.DataFrame()
    if len(triplets):
        triplets = triplets[triplets["_record"].isin(set(newest["_record"]))].drop(columns="_record")
    return Collected(newest[SCORE_COLUMNS].reset_index(drop=True), triplets, notes, folders)


def report_runs(run_dirs: list[Path], out_dir: Path) -> TablesDocument:
    """Write scores.csv / .md / .tex and triplets.csv for the merged records of ``run_dirs`` into ``out_dir``."""
    collected = collect_records(run_dirs)
    split = headline_split(collected.scores)
    dataset = str(collected.scores.loc[collected.scores["split"] == split, "dataset"].iloc[0])
    sources = "; ".join(provenance_line(folder) for folder in collected.records_dirs)
    return write_tables(out_dir, dataset, split, collected.scores, collected.triplets, collected.notes, sources)
