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
from bench.records import RECORD_FORMAT, atomic_write_text
from bench.report import SCORE_COLUMNS, TablesDocument, render_tables
from bench.runner import certificate_notes, monotonicity_notes

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


def collect_records(run_dirs: list[Path]) -> Collected:
    """Every record's score rows (newest per cell) and its triplets, in the order runs list metrics."""
    score_rows: list[dict] = []
    triplet_parts: list[pd.DataFrame] = []
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
            for row in record.get("scores", []):
                score_rows.append({**meta, **row, "_time": stamp, "_record": str(path)})
            if record.get("scores"):
                csv = path.with_name(record.get("triplets_file", ""))
                if csv.is_file():
                    frame = pd.read_csv(csv, dtype={"id": str, "group": str})
                    triplet_parts.append(frame.assign(metric=unit["metric"], dataset=meta["dataset"], split=unit["split"], _record=str(path)))
    if not score_rows:
        raise BenchError(f"no usable records in {', '.join(map(str, run_dirs))}; run the benchmark first")
    scores = pd.DataFrame(score_rows)
    scores["eps"] = scores["eps"].astype(float)
    order = metric_order + [m for m in dict.fromkeys(scores["metric"]) if m not in metric_order]
    newest = scores.sort_values("_time", kind="stable").drop_duplicates(CELL, keep="last")
    superseded = sorted(set(scores["_record"]) - set(newest["_record"]))
    newest = newest.assign(_order=newest["metric"].map(order.index)).sort_values(["_order"], kind="stable")
    notes = []
    if superseded:
        notes.append(f"{len(superseded)} older record(s) for the same cells were superseded by newer ones")
    if skipped:
        notes.append(f"{skipped} unreadable or old-format record(s) ignored")
    triplets = pd.concat(triplet_parts, ignore_index=True) if triplet_parts else pd.DataFrame()
    if len(triplets):
        triplets = triplets[triplets["_record"].isin(set(newest["_record"]))].drop(columns="_record")
    return Collected(newest[SCORE_COLUMNS].reset_index(drop=True), triplets, notes, folders)


def headline_split(scores: pd.DataFrame) -> tuple[str, str]:
    """(dataset, split) of the table: the one whose natural rows cover the most triplets."""
    natural = scores[scores["evaluation"] == "natural"]
    rows = natural if len(natural) else scores
    best = rows.sort_values("n", ascending=False, kind="stable").iloc[0]
    return str(best["dataset"]), str(best["split"])


def report_runs(run_dirs: list[Path], out_dir: Path) -> TablesDocument:
    """Write scores.csv / scores.md / scores.tex for the merged records of ``run_dirs`` into ``out_dir``."""
    from bench.report import provenance_line

    collected = collect_records(run_dirs)
    dataset, split = headline_split(collected.scores)
    notes = list(collected.notes)
    if len(collected.triplets):
        notes += certificate_notes(collected.triplets) + monotonicity_notes(collected.scores, split)
    sources = "; ".join(provenance_line(folder) for folder in collected.records_dirs)
    document = render_tables(collected.scores, dataset, split, notes, sources)
    atomic_write_text(out_dir / "scores.csv", collected.scores.to_csv(index=False))
    atomic_write_text(out_dir / "scores.md", document.markdown + "\n")
    atomic_write_text(out_dir / "scores.tex", document.latex + "\n")
    return document
