"""What the leaderboard shows, read from run folders: a table per protocol, each cell with the provenance of
the record that computed it.

A *protocol* is what must be equal for two scores to be compared at all: the dataset, the split, the image the
attacks and certificates perturb (``--perturb``), and the triplets scored (n and ``--every``). Records of several
run folders with one protocol share a table (so the ensemble run's worst case sits beside the default run's
attacks); a cell computed with other evaluation settings (steps, restarts, seed) gets its own column named by the
difference, as ``report`` names it (bench/report/variants.py), so a 20-step and a 100-step APGD never share one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lipsim_bench.errors import BenchError
from lipsim_bench.formatting import ordinal
from lipsim_bench.report.collect import Entry, collect
from lipsim_bench.report.mixing import unit_settings
from lipsim_bench.report.tables import column_label, headline_split, scores_table
from lipsim_bench.report.variants import stamp
from lipsim_bench.run.integrity import read_checked
from lipsim_bench.run.records import RECORD_FORMAT
from lipsim_bench.site.provenance import Provenance, number, plain, provenance
from lipsim_bench.site.transfer import TransferPanel, transfer_panels
from lipsim_bench.tasks.base import TaskInfo

#: Column groups of a protocol's table, in reading order, by the evaluation's kind.
GROUPS = {"clean": "natural", "attack": "robust", "certificate": "certified"}


def slug(text: str) -> str:
    """A file-name-safe form of a metric or protocol name (letters, digits, ``.``, ``_``, ``-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


@dataclass
class Cell:
    """One score of the table, its 95% interval when the records give one, and its provenance."""

    metric: str
    column: str
    score: float
    n: int | None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str = ""
    provenance: Provenance | None = None


@dataclass
class Column:
    label: str
    group: str  # natural, robust, certified (or another evaluation kind)
    evaluation: str
    norm: str | None
    eps: float | None


@dataclass
class Protocol:
    """One sortable table: a row per metric, a column per evaluation and radius."""

    slug: str
    dataset: str
    split: str
    perturb: str
    n: str
    every: int
    columns: list[Column]
    metrics: list[str]
    cells: dict[tuple[str, str], Cell]
    settings: list[str]
    notes: list[str]
    runs: list[str]
    transfer: list[TransferPanel] = field(default_factory=list)  # the transfer matrix, a panel per radius

    @property
    def title(self) -> str:
        every = f", every {ordinal(self.every)} triplet" if self.every > 1 else ""
        return f"{self.dataset} / {self.split}, n = {self.n}{every}, perturbed: {self.perturb}"

    def row(self, metric: str) -> list[Cell | None]:
        return [self.cells.get((metric, c.label)) for c in self.columns]


@dataclass
class Board:
    """Everything the site renders: re-evaluated protocols, the metrics, the package sets (environments)."""

    protocols: list[Protocol]
    metrics: dict[str, str]  # metric -> page slug
    environments: dict[str, dict[str, Any]]
    conventions: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def _protocol_key(record: dict[str, Any]) -> tuple:
    unit = record.get("unit") or {}
    settings = unit.get("settings") or {}
    config = record.get("config") or {}
    every = config.get("every", 1)
    return (
        str(unit.get("dataset")),
        str(unit.get("split")),
        str(settings.get("perturb") or "ref"),
        str(unit.get("n")) if unit.get("n") is not None else "all",
        every if isinstance(every, int) and every > 1 else 1,
    )


def read_runs(run_dirs: list[Path]) -> tuple[list[tuple[Entry, str]], list[str]]:
    """Every usable record of ``run_dirs`` with its folder's name; unusable ones are skipped and counted."""
    entries: list[tuple[Entry, str]] = []
    notes: list[str] = []
    seen: set[tuple[str, str]] = set()
    for run_dir in dict.fromkeys(d.resolve() for d in run_dirs):
        folder = run_dir / "records"
        if not folder.is_dir():
            raise BenchError(
                f"{run_dir} is not a run folder (no records/ inside); give folders a run wrote, "
                "e.g. results/reference/sample-test"
            )
        found = 0
        for path in sorted(folder.glob("*.json")):
            checked = read_checked(path, RECORD_FORMAT)
            if isinstance(checked, str):
                notes.append(f"skipped {path.name} of {run_dir.name}: {checked}")
                continue
            record, rows = checked
            same = _identity(path, record)
            if same in seen:  # the same computation copied into two folders: one cell
                continue
            seen.add(same)
            entries.append((Entry(record, rows=rows, path=path), run_dir.name))
            found += 1
        if not found:
            raise BenchError(f"{run_dir} holds no usable records; run the benchmark into it first")
    return entries, notes


def _identity(path: Path, record: dict[str, Any]) -> tuple[str, str]:
    """One computation, wherever its record was copied (a run folder, an entry's folder): name and provenance."""
    return path.name, json.dumps(record.get("provenance"), sort_keys=True, default=str)


def _ordered(entries: list[tuple[Entry, str]]) -> list[tuple[Entry, str]]:
    """The runs' own metric order (earliest run first), then each run's unit order, as ``report`` orders them."""
    order: list[str] = []
    for entry, _ in sorted(entries, key=lambda pair: stamp(pair[0].record)):
        listed = (entry.record.get("config") or {}).get("metrics", [])
        order += [m for m in listed if isinstance(m, str) and m not in order] if isinstance(listed, list) else []
    order += [m for m in dict.fromkeys(e.record["unit"]["metric"] for e, _ in entries) if m not in order]
    return sorted(
        entries,
        key=lambda pair: (
            order.index(pair[0].record["unit"]["metric"]),
            pair[0].record.get("position", 0),
            stamp(pair[0].record),
        ),
    )


def _index(entries: list[tuple[Entry, str]]) -> dict[tuple, list[tuple[str, int]]]:
    """Score rows of each record by everything but the evaluation's name (a variant column renames it)."""
    index: dict[tuple, list[tuple[str, int]]] = {}
    for i, (entry, _) in enumerate(entries):
        unit = entry.record["unit"]
        own = unit_settings(unit)
        for row in entry.record.get("scores", []):
            key = (
                unit["metric"],
                row.get("split"),
                row.get("norm"),
                _eps(row.get("eps")),
                own["seed"],
                own["settings"],
            )
            index.setdefault(key, []).append((str(row.get("evaluation")), i))
    return index


def _eps(value: Any) -> float | None:
    eps = number(value)
    return None if eps is None else round(eps, 12)


def _named(evaluation: str, record_name: str) -> bool:
    """Whether a table's evaluation name is the record's own or a variant of it (``apgd(steps=20)``)."""
    if evaluation == record_name:
        return True
    stem = record_name[:-1] + ", " if record_name.endswith(")") else record_name + "("
    return evaluation.startswith(stem)


def _source(row: Any, entries: list[tuple[Entry, str]], index: dict) -> int | None:
    """The record behind a collected score row: same metric, split, radius, seed and settings; the newest wins,
    as the table resolves a recomputed cell."""
    seed = None if row.seed is None or pd.isna(row.seed) else row.seed
    norm = row.norm if isinstance(row.norm, str) else None
    found = [
        i
        for name, i in index.get((row.metric, row.split, norm, _eps(row.eps), seed, row.settings), [])
        if _named(str(row.evaluation), name)
    ]
    return max(found, key=lambda i: stamp(entries[i][0].record)) if found else None


def build_protocol(
    entries: list[tuple[Entry, str]], key: tuple, environments: dict[str, dict[str, Any]]
) -> Protocol | None:
    """One protocol's table from its records (None when they hold no score, e.g. diagnostics only)."""
    entries = _ordered(entries)
    collected = collect([e for e, _ in entries])
    scores = collected.scores
    if scores.empty:
        return None
    split = headline_split(scores)
    rows = scores[scores["split"] == split]
    table = scores_table(rows, split)
    kinds: dict[str, str] = {}
    columns: dict[str, Column] = {}
    index = _index(entries)
    cells: dict[tuple[str, str], Cell] = {}
    for row in rows.itertuples():
        label = column_label(str(row.evaluation), row.norm, row.eps)
        norm = row.norm if isinstance(row.norm, str) else None
        columns.setdefault(
            label, Column(label, GROUPS.get(str(row.kind), str(row.kind)), str(row.evaluation), norm, number(row.eps))
        )
        kinds[label] = str(row.kind)
        source = _source(row, entries, index)
        cells[(str(row.metric), label)] = Cell(
            metric=str(row.metric),
            column=label,
            score=float(row.score),
            n=int(row.n) if number(row.n) is not None else None,
            ci_low=number(getattr(row, "ci_low", None)),
            ci_high=number(getattr(row, "ci_high", None)),
            ci_method=str(getattr(row, "ci_method", "") or "")
            if number(getattr(row, "ci_low", None)) is not None
            else "",
            provenance=None if source is None else provenance(entries[source][0], entries[source][1], environments),
        )
    settings = []
    for column in columns.values():
        if column.group == "natural":
            continue
        for metric in table.index:
            cell = cells.get((str(metric), column.label))
            if cell and cell.provenance and cell.provenance.options:
                line = f"{column.evaluation}: {cell.provenance.options}"
                if line not in settings:
                    settings.append(line)
                break
    dataset, _, perturb, n, every = key
    return Protocol(
        slug=slug(f"{dataset}-{split}-{perturb}-n{n}" + (f"-every{every}" if every > 1 else "")),
        dataset=dataset,
        split=split,
        perturb=perturb,
        n=n if n != "all" else str(int(rows["n"].max())),
        every=every,
        columns=[columns[label] for label in table.columns],
        metrics=[str(m) for m in table.index],
        cells=cells,
        settings=settings,
        notes=collected.notes,
        runs=list(dict.fromkeys(run for _, run in entries)),
        transfer=transfer_panels(collected),
    )


def _refuse_other_tasks(entries: list[tuple[Entry, str]]) -> None:
    """The site's words, columns and curves are 2AFC's (score, natural/robust/certified, triplets): records of
    another task (retrieval, kNN) are refused in one line rather than shown under a 2AFC heading."""
    other: dict[str, str] = {}
    for entry, label in entries:
        task = TaskInfo.from_dict(entry.record.get("task"))
        if task.name != "2afc":
            other.setdefault(label, f"{(entry.record.get('unit') or {}).get('dataset')} ({task.name})")
    if other:
        where = "; ".join(f"{label}: {what}" for label, what in other.items())
        raise BenchError(
            f"the leaderboard shows 2AFC records only, and these hold another task's ({where}); leave them out, "
            "and read their tables with `run_bench.py report RUN`"
        )


def build_board(run_dirs: list[Path], submitted: list[tuple[Entry, str]] = (), left_out: list[str] = ()) -> Board:
    """The leaderboard of ``run_dirs`` and the records of submitted entries (checked by their reader, labelled by
    their entry): a protocol per distinct (dataset, split, perturbed image, triplets)."""
    entries, notes = read_runs(run_dirs)
    seen = {_identity(e.path, e.record) for e, _ in entries if e.path}
    for entry, label in submitted:  # an entry of a run given too: its records are that run's, shown once
        same = _identity(entry.path, entry.record) if entry.path else None
        if same is None or same not in seen:
            entries.append((entry, label))
            seen.add(same)
    notes = [*left_out, *notes]
    _refuse_other_tasks(entries)
    if not entries:
        why = f" ({notes[0]})" if notes else ""
        raise BenchError(f"no records to show{why}; give a run folder or a re-evaluated entry that passes its checks")
    groups: dict[tuple, list[tuple[Entry, str]]] = {}
    for pair in entries:
        groups.setdefault(_protocol_key(pair[0].record), []).append(pair)
    environments: dict[str, dict[str, Any]] = {}
    protocols = [p for key, part in groups.items() if (p := build_protocol(part, key, environments)) is not None]
    if not protocols:
        raise BenchError(
            f"the records of {', '.join(map(str, run_dirs)) or 'the entries'} hold no scores (diagnostics only); "
            "give run folders with natural, attack or certified units"
        )
    metrics: dict[str, str] = {}
    for protocol in protocols:
        for metric in protocol.metrics:
            if metric not in metrics:
                name, k = slug(metric), 2
                while name in metrics.values():
                    name, k = f"{slug(metric)}-{k}", k + 1
                metrics[metric] = name
    slugs = [p.slug for p in protocols]
    for i, protocol in enumerate(protocols):
        if slugs.count(protocol.slug) > 1:
            protocol.slug = f"{protocol.slug}-{i + 1}"
    conventions: dict[str, dict[str, Any]] = {}
    for entry, _ in entries:
        stated = entry.record.get("conventions")
        if isinstance(stated, dict):
            conventions.setdefault(entry.record["unit"]["metric"], {str(k): plain(v) for k, v in stated.items()})
    return Board(protocols, metrics, environments, conventions, notes)
