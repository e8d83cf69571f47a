"""Records -> frames, for a finished run and ``run_bench.py report DIR...`` alike.

Each record holds its unit, its evaluation's name and kind, its score rows, notes and the name of
its per-triplet CSV, so nothing here needs the evaluation registry: a run folder made with a
plugin can be reported without it. Two records of the same cell (metric, split, evaluation, norm,
eps) are resolved by bench/report/variants.py: one setting per cell, another setting its own column.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lipsim_bench.errors import BenchError
from lipsim_bench.formatting import ordinal
from lipsim_bench.report.intervals import INTERVAL_COLUMNS, row_interval
from lipsim_bench.report.mixing import unit_settings
from lipsim_bench.report.paper_certified import paper_certified_rows
from lipsim_bench.report.seeds import SEED_COLUMNS, fold_seeds
from lipsim_bench.report.variants import resolve, stamp, variant_name
from lipsim_bench.run.integrity import read_checked
from lipsim_bench.run.records import RECORD_FORMAT, read_triplets
from lipsim_bench.run.runlog import RunLog
from lipsim_bench.tasks.base import TaskInfo

#: seed and settings (the unit's, as JSON) let a table mark a cell computed unlike the rest (bench/report/mixing.py)
#: ci_low, ci_high, ci_method: the 95% interval over triplets, in percent (bench/report/intervals.py); after n,
#: so the first eight columns are as they were
SCORE_COLUMNS = [
    "metric",
    "dataset",
    "split",
    "evaluation",
    "norm",
    "eps",
    "score",
    "n",
    *INTERVAL_COLUMNS,
    "kind",
    "seed",
    "settings",
]
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
        self.rows = read_triplets(self.path.parent / name)  # read once: the intervals and the triplets both use it
        return self.rows

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
    #: Each dataset's task, as its records describe it (title, item nouns, per-item columns and file)
    tasks: dict[str, TaskInfo] = field(default_factory=dict)
    #: The figures the records' evaluations declare ("module:function"), each with the rows it is drawn from
    figures: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: The footer lines of the records of each evaluation kind (a table of certificates shows the certificates')
    kind_notes: dict[str, list[str]] = field(default_factory=dict)
    #: Each evaluation's declared place among its kind's columns (``Evaluation.table_rank``), by its name in the rows
    ranks: dict[str, int] = field(default_factory=dict)
    #: The footer lines of each dataset's records: a table shows its own dataset's, not another's (kNN notes under
    #: a retrieval table); lines of no record (replaced cells, seeds) are every table's
    dataset_notes: dict[str, list[str]] = field(default_factory=dict)

    def notes_of(self, dataset: str, notes: list[str]) -> list[str]:
        """``notes`` without the lines that only other datasets' records wrote."""
        own = set(self.dataset_notes.get(dataset, []))
        foreign = {n for d, lines in self.dataset_notes.items() if d != dataset for n in lines} - own
        return [n for n in notes if n not in foreign]

    def task(self, dataset: str) -> TaskInfo:
        return self.tasks.get(dataset) or TaskInfo.from_dict(None)


#: The figures of evaluations whose records predate declared figures (``Evaluation.figures``): their records name
#: no figure, so a report of such a folder still draws what it drew before.
LEGACY_FIGURES = {
    "direct": ("lipsim_bench.report.histograms:draw",),
    "transfer": ("lipsim_bench.report.transfer:write_transfer",),
}


def declared_figures(record: dict[str, Any]) -> tuple[str, ...]:
    """The figures a record's evaluation declares (older records: :data:`LEGACY_FIGURES`)."""
    evaluation = record.get("evaluation") or {}
    figures = evaluation.get("figures")
    if isinstance(figures, list):
        return tuple(str(f) for f in figures)
    return LEGACY_FIGURES.get(str(evaluation.get("name")), ())


def not_applicable_note(evaluation: str, metric: str) -> str:
    """The table note for a unit stored without scores (e.g. a certificate for a metric without a bound)."""
    return f"{evaluation} does not apply to {metric}"


def measure_note(entry: Entry, task: TaskInfo) -> str:
    """The footer line of a column that measures something other than the table's title (``Evaluation.measure``:
    mAP, Recall@5, top-1 stability in a Recall@1 table); empty for a column the title describes."""
    measures = (entry.record.get("evaluation") or {}).get("measures")
    if not isinstance(measures, str) or not measures:
        return ""
    columns = dict.fromkeys(str(row.get("evaluation")) for row in entry.record.get("scores", []))
    return f"{', '.join(columns) or entry.name}: {measures}, not {task.score}"


def subsample_note(config: dict[str, Any], task: TaskInfo | None = None) -> str:
    """The footer line of a run on a subsample (``--every K``), in the task's items; empty for a run on all."""
    every = config.get("every", 1)
    if not isinstance(every, int) or every <= 1:
        return ""
    first = config.get("n")
    task = task or TaskInfo.from_dict(None)
    return (
        f"{task.items}: a subsample, every {ordinal(every)} {task.item} of the split"
        + (f"'s first {first}" if first else "")
        + f" (--every {every})"
    )


def _cell(meta: dict[str, Any], row: dict[str, Any]) -> tuple:
    """A score row's cell, hashable (NaN norm and eps read as None, eps rounded as the table rounds it)."""
    norm, eps = row.get("norm"), row.get("eps")
    eps = None if eps is None or (isinstance(eps, float) and math.isnan(eps)) else round(float(eps), 12)
    return (
        meta["metric"],
        meta["dataset"],
        row.get("split"),
        row.get("evaluation"),
        norm if isinstance(norm, str) else None,
        eps,
    )


def collect(entries: list[Entry], metric_order: list[str] | None = None) -> Collected:
    """Frames from records in the given order (a run's): one setting per cell (see bench/report/variants.py)."""
    entries, seed_notes = fold_seeds(entries)  # a cell run under several seeds: one entry, their mean (report/seeds.py)
    cells: list[tuple[int, tuple]] = []
    raw: list[dict] = []
    for i, entry in enumerate(entries):
        unit = entry.record["unit"]
        meta = {"metric": unit["metric"], "dataset": unit["dataset"]}
        settings = unit_settings(unit)
        frame = entry.frame() if entry.record.get("scores") else None
        for row in entry.record.get("scores", []):
            cells.append((i, _cell(meta, row)))
            found = row_interval(frame, row, seed=settings["seed"])
            ci = {"ci_low": found.low, "ci_high": found.high, "ci_method": found.method}
            raw.append({**meta, **row, **ci, "kind": entry.kind, **settings, "_entry": i})
    resolved = resolve([e.record for e in entries], cells)
    kept_rows = [row for position, row in enumerate(raw) if position not in resolved.dropped_rows]
    for row in kept_rows:
        if row["_entry"] in resolved.names:
            row["evaluation"] = variant_name(str(row["evaluation"]), resolved.differs[row["_entry"]])
    metric_rank = {m: r for r, m in enumerate(dict.fromkeys(row["metric"] for row in kept_rows))}
    kept_rows.sort(
        key=lambda row: (metric_rank[row["metric"]], row["_entry"] in resolved.names)
    )  # a column after its variants' main one
    columns = SCORE_COLUMNS + [c for c in SEED_COLUMNS if any(c in row for row in kept_rows)]
    scores = pd.DataFrame(kept_rows, columns=columns + ["_entry"])
    scores["eps"] = scores["eps"].astype(float)
    kept = set(scores["_entry"])
    replaced = len(resolved.dropped_rows)
    notes: list[str] = []
    kind_notes: dict[str, list[str]] = {}
    dataset_notes: dict[str, list[str]] = {}
    for i, entry in enumerate(entries):
        if i in resolved.dropped_records:
            continue  # its cells were replaced: its footer lines describe numbers the table does not show
        unit = entry.record["unit"]
        new = (
            [not_applicable_note(entry.name, unit["metric"])]
            if not entry.record.get("applies")
            else entry.record.get("notes", [])
        )
        task = TaskInfo.from_dict(entry.record.get("task"))
        new = [subsample_note(entry.record.get("config") or {}, task), measure_note(entry, task)] + new
        if i in resolved.names:  # a column of its own: its lines say which
            new = [f"{resolved.names[i]}: {line}" for line in new if line]
        notes += [n for n in new if n and n not in notes]
        own = kind_notes.setdefault(entry.kind, [])
        own += [n for n in new if n and n not in own]
        mine = dataset_notes.setdefault(str(unit["dataset"]), [])
        mine += [n for n in new if n and n not in mine]
    if replaced:
        why = f"after a change of {', '.join(sorted(resolved.changed))}" if resolved.changed else "with the same key"
        notes.append(f"{replaced} older cell(s) replaced by newer records of the same settings (recomputed {why})")
    notes += seed_notes
    triplets, diagnostics = [], {}
    figures: dict[str, list[pd.DataFrame]] = {}
    tasks: dict[str, TaskInfo] = {}
    ranks: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if i in resolved.dropped_records:
            continue
        unit = entry.record["unit"]
        tasks.setdefault(str(unit["dataset"]), TaskInfo.from_dict(entry.record.get("task")))
        rank = (entry.record.get("evaluation") or {}).get("table_rank")
        if isinstance(rank, int) and not isinstance(rank, bool):
            ranks.setdefault(entry.name, rank)
        frame = entry.frame()
        if frame is None or not len(frame):
            continue
        meta = {"metric": unit["metric"], "dataset": unit["dataset"], "split": unit["split"]}
        for figure in declared_figures(entry.record):
            metric = f"{unit['metric']} [{resolved.names[i]}]" if i in resolved.names else unit["metric"]
            figures.setdefault(figure, []).append(frame.assign(**{**meta, "metric": metric}))
        if entry.kind == "diagnostic" and entry.record["evaluation"].get("output_csv"):
            metric = f"{unit['metric']} [{resolved.names[i]}]" if i in resolved.names else unit["metric"]
            diagnostics.setdefault(entry.record["evaluation"]["output_csv"], []).append(frame.assign(metric=metric))
        elif i in kept:
            frame = _kept_triplets(frame, scores[scores["_entry"] == i])
            if i in resolved.names:
                differs = resolved.differs[i]
                own = frame["evaluation"] if "evaluation" in frame.columns else pd.Series(entry.name, index=frame.index)
                frame = frame.assign(evaluation=[variant_name(str(e), differs) for e in own])
            triplets.append(frame.assign(**meta, kind=entry.kind))
    triplet_frame = pd.concat(triplets, ignore_index=True) if triplets else pd.DataFrame()
    scores = scores[columns].reset_index(drop=True)
    paper, paper_notes = paper_certified_rows(scores, triplet_frame)  # NIGHT's votes: the paper's definition too
    if len(paper):
        scores = pd.concat([scores, paper], ignore_index=True)
    return Collected(
        scores=scores,
        triplets=triplet_frame,
        diagnostics={name: pd.concat(parts, ignore_index=True) for name, parts in diagnostics.items()},
        notes=notes + paper_notes,
        tasks=tasks,
        figures={name: pd.concat(parts, ignore_index=True) for name, parts in figures.items()},
        kind_notes=kind_notes,
        ranks=ranks,
        dataset_notes=dataset_notes,
    )


def _kept_triplets(frame: pd.DataFrame, kept: pd.DataFrame) -> pd.DataFrame:
    """A record's per-triplet rows at the radii whose cells the table still shows (newer records replaced the rest)."""
    if "eps" not in frame.columns or kept["eps"].isna().any():
        return frame
    radii = {round(float(e), 12) for e in kept["eps"]}
    eps = pd.to_numeric(frame["eps"], errors="coerce")
    return frame[eps.isna() | eps.round(12).isin(radii)]


def _records_dir(run_dir: Path) -> Path:
    folder = run_dir / "records"
    if not folder.is_dir():
        raise BenchError(f"{run_dir} has no records/ folder; give the folder of a run (e.g. results/sample-test)")
    return folder


def _read(path: Path) -> tuple[dict, pd.DataFrame] | str:
    """A record and its per-triplet rows, both verified (types, checksum, CSV sha256 and rows), or why not."""
    return read_checked(path, RECORD_FORMAT)


def _base(evaluation: str) -> str:
    """``smoothing(sigma=0.25)`` -> ``smoothing``: a filter names an evaluation as the run does."""
    return evaluation.split("(", 1)[0]


def select(entries: list[Entry], metrics: list[str] | None, evaluations: list[str] | None) -> list[Entry]:
    """The entries of the named metrics and evaluations (the names the run uses); an unknown name is one line."""
    for names, what, held in (
        (metrics, "metric", lambda e: [e.record["unit"]["metric"]]),
        (evaluations, "evaluation", lambda e: [e.name, _base(e.name)]),
    ):
        if names is None:
            continue
        if not names:
            raise BenchError(f"--{what}s names no {what}; give comma-separated names, or leave the option out for all")
        found = list(dict.fromkeys(n for e in entries for n in held(e)))
        unknown = [n for n in names if n not in found]
        if unknown:
            raise BenchError(
                f"no {what} {', '.join(map(repr, unknown))} in these records; they hold: "
                f"{', '.join(dict.fromkeys(held(e)[-1] for e in entries))}"
            )
        entries = [e for e in entries if set(held(e)) & set(names)]
    return entries


def read_records(
    run_dirs: list[Path], metrics: list[str] | None = None, evaluations: list[str] | None = None
) -> Collected:
    """Every usable record of ``run_dirs`` (of ``metrics`` and ``evaluations`` when given), in the runs'
    metric order and unit order.

    A record that fails its checks is skipped: one line names it and why (console and the run's run.log),
    and the table's footer counts it, so a damaged file never becomes a number.
    """
    run_dirs = list({d.resolve(): d for d in reversed(run_dirs)}.values())[::-1]  # a folder named twice is read once
    folders = [_records_dir(d) for d in run_dirs]
    entries: list[Entry] = []
    skipped = 0
    seen: set[tuple[str, str]] = set()
    order: list[str] = []  # the runs' own --metrics order, so merged tables read like the runs'
    for run_dir, folder in zip(run_dirs, folders):
        for path in sorted(folder.glob("*.json")):
            checked = _read(path)
            if isinstance(checked, str):
                skipped += 1
                RunLog(run_dir / "run.log").warn(f"report: skipped record {path}: {checked}")
                continue
            record, rows = checked
            same = (path.name, json.dumps(record.get("provenance"), sort_keys=True, default=str))
            if same in seen:  # a copy of a record already read (a folder and its copy): one computation, one cell
                continue
            seen.add(same)
            entries.append(Entry(record, rows=rows, path=path))
    if not entries:
        raise BenchError(f"no usable records in {', '.join(map(str, run_dirs))}; run the benchmark first")
    entries = select(entries, metrics, evaluations)

    def when(entry: Entry) -> tuple[str, int]:
        return stamp(entry.record)

    for entry in sorted(entries, key=when):  # the earliest run's order first: a later run never reorders the table
        metrics_of_run = (entry.record.get("config") or {}).get("metrics", [])
        order += (
            [m for m in metrics_of_run if isinstance(m, str) and m not in order]
            if isinstance(metrics_of_run, list)
            else []
        )
    order += [m for m in dict.fromkeys(e.record["unit"]["metric"] for e in entries) if m not in order]
    entries.sort(key=lambda e: (order.index(e.record["unit"]["metric"]), e.record.get("position", 0), when(e)))
    collected = collect(entries)
    if skipped:
        collected.notes.append(
            f"{skipped} unreadable, altered or old-format record(s) ignored (named in run.log); "
            "rerun the benchmark to recompute them"
        )
    collected.records_dirs = folders
    return collected
