"""Records -> frames, for a finished run and ``run_bench.py report DIR...`` alike.

Each record holds its unit, its evaluation's name and kind, its score rows, notes and the name of
its per-triplet CSV, so nothing here needs the evaluation registry: a run folder made with a
plugin can be reported without it. When two records give the same cell (metric, split,
evaluation, norm, eps), the newest wins and the footer says how many were superseded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lipsim_bench.errors import BenchError
from lipsim_bench.formatting import subsample_phrase
from lipsim_bench.report.mixing import unit_settings
from lipsim_bench.run.integrity import read_checked
from lipsim_bench.run.records import RECORD_FORMAT, read_triplets
from lipsim_bench.run.runlog import RunLog

#: seed and settings (the unit's, as JSON) let a table mark a cell computed unlike the rest (bench/report/mixing.py)
SCORE_COLUMNS = ["metric", "dataset", "split", "evaluation", "norm", "eps", "score", "n", "kind", "seed", "settings"]
CELL = ["metric", "dataset", "split", "evaluation", "norm", "eps"]


@dataclass
class Entry:
    """One record and a way to its per-triplet rows."""

    record: dict[str, Any]
    rows: pd.DataFrame | None = None
    path: Path | None = None

    def frame(self) -> pd.DataFrame | None:
        if self.rows is not None:
            return self.rows
        name = self.record.get("triplets_file")
        if self.path is None or not name or not (self.path.parent / name).is_file():
            return None
        return read_triplets(self.path.parent / name)

    @property
    def name(self) -> str:
        return self.record["evaluation"]["name"]

    @property
    def kind(self) -> str:
        return self.record["evaluation"]["kind"]


@dataclass
class Collected:
    """Score rows, per-triplet rows, diagnostic outputs, and footer notes."""

    scores: pd.DataFrame
    triplets: pd.DataFrame
    diagnostics: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    records_dirs: list[Path] = field(default_factory=list)


def not_applicable_note(evaluation: str, metric: str) -> str:
    """The table note for a unit stored without scores (e.g. a certificate for a metric without a bound)."""
    return f"{evaluation} does not apply to {metric}"


def subsample_note(config: dict[str, Any]) -> str:
    """The footer line of a run on a subsample (``--every K``); empty for a run on every triplet."""
    every = config.get("every", 1)
    if not isinstance(every, int) or every <= 1:
        return ""
    first = config.get("n")
    return f"triplets: a subsample{subsample_phrase(every)} of the split" + (f"'s first {first}" if first else "") + f" (--every {every})"


def collect(entries: list[Entry], metric_order: list[str] | None = None) -> Collected:
    """Frames from records in the given order (a run's), newest record per cell."""
    score_rows: list[dict] = []
    for i, entry in enumerate(entries):
        unit = entry.record["unit"]
        meta = {"metric": unit["metric"], "dataset": unit["dataset"]}
        prov = entry.record.get("provenance") or {}
        stamp = (str(prov.get("time", "")), int(prov.get("time_ns") or 0))
        for row in entry.record.get("scores", []):
            score_rows.append({**meta, **row, "kind": entry.kind, **unit_settings(unit), "_time": stamp[0], "_ns": stamp[1], "_entry": i})
    scores = pd.DataFrame(score_rows, columns=SCORE_COLUMNS + ["_time", "_ns", "_entry"])
    scores["eps"] = scores["eps"].astype(float)
    newest = scores.sort_values(["_time", "_ns"], kind="stable").drop_duplicates(CELL, keep="last").sort_values("_entry", kind="stable")
    kept = set(newest["_entry"])
    superseded = set(scores["_entry"]) - kept
    notes: list[str] = []
    for i, entry in enumerate(entries):
        if i in superseded:
            continue  # every cell of this record was replaced: its footer lines describe numbers the table does not show
        unit = entry.record["unit"]
        new = [not_applicable_note(entry.name, unit["metric"])] if not entry.record.get("applies") else entry.record.get("notes", [])
        new = [subsample_note(entry.record.get("config") or {})] + new
        notes += [n for n in new if n and n not in notes]
    if superseded:
        notes.append(f"{len(superseded)} older record(s) for the same cells were superseded by newer ones")
    triplets, diagnostics = [], {}
    for i, entry in enumerate(entries):
        unit = entry.record["unit"]
        frame = entry.frame()
        if frame is None or not len(frame):
            continue
        meta = {"metric": unit["metric"], "dataset": unit["dataset"], "split": unit["split"]}
        if entry.kind == "diagnostic" and entry.record["evaluation"].get("output_csv"):
            diagnostics.setdefault(entry.record["evaluation"]["output_csv"], []).append(frame.assign(metric=unit["metric"]))
        elif i in kept:
            triplets.append(frame.assign(**meta, kind=entry.kind))
    return Collected(
        scores=newest[SCORE_COLUMNS].reset_index(drop=True),
        triplets=pd.concat(triplets, ignore_index=True) if triplets else pd.DataFrame(),
        diagnostics={name: pd.concat(parts, ignore_index=True) for name, parts in diagnostics.items()},
        notes=notes,
    )


def _records_dir(run_dir: Path) -> Path:
    folder = run_dir / "records"
    if not folder.is_dir():
        raise BenchError(f"{run_dir} has no records/ folder; give the folder of a run (e.g. results/sample-test)")
    return folder


def _read(path: Path) -> tuple[dict, pd.DataFrame] | str:
    """A record and its per-triplet rows, both verified (types, checksum, CSV sha256 and rows), or why not."""
    return read_checked(path, RECORD_FORMAT)


def read_records(run_dirs: list[Path]) -> Collected:
    """Every usable record of ``run_dirs``, in the runs' metric order and unit order.

    A record that fails its checks is skipped: one line names it and why (console and the run's run.log),
    and the table's footer counts it, so a damaged file never becomes a number.
    """
    folders = [_records_dir(d) for d in run_dirs]
    entries: list[Entry] = []
    skipped = 0
    order: list[str] = []  # the runs' own --metrics order, so merged tables read like the runs'
    for run_dir, folder in zip(run_dirs, folders):
        for path in sorted(folder.glob("*.json")):
            checked = _read(path)
            if isinstance(checked, str):
                skipped += 1
                RunLog(run_dir / "run.log").warn(f"report: skipped record {path}: {checked}")
                continue
            record, rows = checked
            order += [m for m in record["config"].get("metrics", []) if isinstance(m, str) and m not in order]
            entries.append(Entry(record, rows=rows, path=path))
    if not entries:
        raise BenchError(f"no usable records in {', '.join(map(str, run_dirs))}; run the benchmark first")
    order += [m for m in dict.fromkeys(e.record["unit"]["metric"] for e in entries) if m not in order]
    def when(entry: Entry) -> tuple[str, int]:
        prov = entry.record.get("provenance") or {}
        return str(prov.get("time", "")), int(prov.get("time_ns") or 0)

    entries.sort(key=lambda e: (order.index(e.record["unit"]["metric"]), e.record.get("position", 0), when(e)))
    collected = collect(entries)
    if skipped:
        collected.notes.append(f"{skipped} unreadable, altered or old-format record(s) ignored (named in run.log); "
                               "rerun the benchmark to recompute them")
    collected.records_dirs = folders
    return collected
