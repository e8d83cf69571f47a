"""A run's own entry for one metric (``run_bench.py entry RUN_DIR --metric NAME``).

Cells are the run's table cells for that metric, as ``report`` collects them (bench/report/collect.py: one
setting per cell, the newest record of a setting), each naming the record whose per-triplet rows give it. The
records, their triplet CSVs and the attack units' stored adversarial inputs are referenced relative to the entry
file: written inside the run folder the entry points at the run's own ``records/``; written elsewhere they are
copied into ``records/`` beside it, so the folder holding the entry is the whole submission.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.adversarial import ADVERSARIAL
from lipsim_bench.io import atomic_write_text
from lipsim_bench.metrics import get_metric_spec
from lipsim_bench.report.collect import Entry, collect
from lipsim_bench.report.mixing import unit_settings
from lipsim_bench.report.paper_certified import PAPER_EVALUATION
from lipsim_bench.report.variants import stamp
from lipsim_bench.run.integrity import read_checked
from lipsim_bench.run.plan import RANDOM_WEIGHTS_LABEL
from lipsim_bench.run.records import RECORD_FORMAT
from lipsim_bench.submission.cells import same_cell
from lipsim_bench.submission.files import digest, place, relative
from lipsim_bench.submission.schema import ENTRY_FORMAT, schema_problems

RANDOM_SUFFIX = RANDOM_WEIGHTS_LABEL.format(name="")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin", ".zip")


@dataclass
class Paper:
    """What ``--paper-*`` says about the metric's paper (all optional for a run's own entry)."""

    title: str | None = None
    authors: list[str] = field(default_factory=list)
    year: int | None = None
    url: str | None = None

    def block(self) -> dict[str, Any] | None:
        if self.title is None:
            if self.authors or self.year or self.url:
                raise BenchError("--paper-authors/--paper-year/--paper-url need --paper-title too")
            return None
        found = {"title": self.title, "authors": self.authors, "year": self.year, "url": self.url}
        return {k: v for k, v in found.items() if v not in (None, [])}


def registry_name(label: str) -> str:
    """``lipsim-tiny (random weights)`` -> ``lipsim-tiny``: the name that builds the metric."""
    return label[: -len(RANDOM_SUFFIX)] if label.endswith(RANDOM_SUFFIX) else label


def metric_entries(run_dir: Path, metric: str) -> tuple[list[Entry], list[str]]:
    """The run's records of ``metric`` (its name in the records, or its registry name) that pass every check,
    in the table's order, and a line per record that failed its checks (left out)."""
    folder = Path(run_dir) / "records"
    if not folder.is_dir():
        raise BenchError(f"{run_dir} has no records/ folder; give the folder of a run (e.g. results/sample-test)")
    entries, skipped, held = [], [], []
    for path in sorted(folder.glob("*.json")):
        checked = read_checked(path, RECORD_FORMAT)
        if isinstance(checked, str):
            skipped.append(f"left out {path.name}: {checked}")
            continue
        record, rows = checked
        held.append(record["unit"]["metric"])
        entries.append(Entry(record, rows=rows, path=path))
    exact = [e for e in entries if e.record["unit"]["metric"] == metric]
    chosen = exact or [e for e in entries if registry_name(e.record["unit"]["metric"]) == metric]
    if not chosen:
        names = ", ".join(dict.fromkeys(held)) or "none"
        raise BenchError(f"--metric {metric}: no usable record of it in {folder}; the run holds: {names}")
    chosen.sort(key=lambda e: (e.record.get("position", 0), stamp(e.record)))
    return chosen, skipped


def _seeds(cell: pd.Series) -> list[int]:
    """The seeds a cell is the mean over (``--seeds``, bench/report/seeds.py), or its one seed."""
    folded = cell.get("seeds")
    if isinstance(folded, str) and folded:
        return [int(s) for s in folded.split(",")]
    return [] if pd.isna(cell["seed"]) else [int(cell["seed"])]


def _sources(entries: list[Entry], cell: pd.Series) -> list[Entry]:
    """The records that give a table cell: same setting, a score row of that cell, at each of its seeds (the
    newest of each), the representative (the cell's own seed) first; several where the cell is a mean over seeds."""
    want = {k: cell[k] for k in ("split", "evaluation", "norm", "eps")}
    want["norm"] = want["norm"] if isinstance(want["norm"], str) else None
    want["eps"] = None if pd.isna(want["eps"]) else float(want["eps"])
    seeds = _seeds(cell)
    found: dict[Any, Entry] = {}
    for e in sorted(entries, key=lambda e: stamp(e.record)):
        seed = e.record["unit"]["settings"].get("seed")
        if (
            unit_settings(e.record["unit"])["settings"] == cell["settings"]
            and (not seeds or seed in seeds)
            and any(same_cell(want, row) for row in e.record.get("scores", []))
        ):
            found[seed] = e
    if not found or (len(seeds) > 1 and set(found) != set(seeds)):
        raise BenchError(f"no record gives the cell {want}; rerun `run_bench.py report` on the run to see why")
    first = None if pd.isna(cell["seed"]) else int(cell["seed"])
    return sorted(
        found.values(),
        key=lambda e: (
            e.record["unit"]["settings"].get("seed") != first,
            str(e.record["unit"]["settings"].get("seed")),
        ),
    )


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _cells(scores: pd.DataFrame, sources: list[list[Entry]], where: dict[int, str]) -> list[dict[str, Any]]:
    cells = []
    for (_, row), members in zip(scores.iterrows(), sources):
        source = members[0]
        cell = {
            "evaluation": str(row["evaluation"]),
            "split": str(row["split"]),
            "norm": row["norm"] if isinstance(row["norm"], str) else None,
            "eps": _number(row["eps"]),
            "score": float(row["score"]),
            "n": int(row["n"]),
            "seed": None if pd.isna(row["seed"]) else int(row["seed"]),
            "seconds": _number(sum(float((e.record.get("config") or {}).get("seconds") or 0) for e in members)),
            "record": where[id(source)],
        }
        if len(members) > 1:  # the mean over seeds: every seed's record, and each seed's score
            order = sorted(members, key=lambda e: e.record["unit"]["settings"].get("seed"))
            cell["seeds"] = [int(e.record["unit"]["settings"]["seed"]) for e in order]
            cell["seed_records"] = [where[id(e)] for e in order]
            cell["seed_scores"] = [float(v) for v in str(row["seed_scores"]).split(",")]
        for bound in ("ci_low", "ci_high"):  # the interval columns, where this version's report gives them
            if bound in scores.columns and _number(row[bound]) is not None:
                cell[bound] = float(row[bound])
        if "ci_low" in cell and isinstance(row.get("ci_method"), str) and row["ci_method"]:
            cell["ci_method"] = row["ci_method"]
        cells.append(cell)
    return cells


def _weights(entries: list[Entry], registry: str, weights_url: str | None) -> dict[str, Any]:
    ids = list(dict.fromkeys(str(e.record["unit"]["settings"].get("weights")) for e in entries))
    if len(ids) > 1:
        raise BenchError(f"the records hold weights {' and '.join(ids)}; write an entry from records of one set")
    conventions = next((e.record["conventions"] for e in entries if isinstance(e.record.get("conventions"), dict)), {})
    try:
        spec = get_metric_spec(registry)
        description, how = str(conventions.get("weights") or spec.weights), spec.how_to_get
    except Exception:  # a plugin metric not loaded here: the records' words only
        description, how = str(conventions.get("weights") or ids[0]), ""
    block: dict[str, Any] = {"description": description, "id": ids[0], "files": []}
    if ids[0].startswith("sha256:"):
        name = next((w for w in re.split(r"[\s,;()]+", description) if w.endswith(WEIGHT_SUFFIXES)), "")
        url = weights_url or next(iter(re.findall(r"https?://[^\s,;)]+", how or "")), None)
        file = {"name": Path(name).name or f"{registry} weights", "sha256": ids[0].removeprefix("sha256:")}
        block["files"].append({**file, **({"url": url} if url else {})})
    return block


def protocol_of(entries: list[Entry]) -> dict[str, Any]:
    units = [e.record["unit"] for e in entries]
    datasets = list(dict.fromkeys(u["dataset"] for u in units))
    if len(datasets) > 1:
        raise BenchError(f"the records hold datasets {', '.join(datasets)}; an entry is one protocol: give one run")
    threats: dict[str, set[float]] = {}
    attacks: list[dict[str, Any]] = []
    for e in entries:
        if e.record.get("threat"):
            threats.setdefault(e.record["threat"]["norm"], set()).add(float(e.record["threat"]["eps"]))
        if e.kind == "attack":
            attack = {"name": e.name, "options": e.record["unit"]["settings"].get("options") or {}}
            if attack not in attacks:
                attacks.append(attack)
    software = []
    for e in entries:
        prov = e.record.get("provenance") or {}
        git = prov.get("git") if isinstance(prov.get("git"), dict) else {}
        item = {"version": prov.get("lipsim_bench"), "commit": git.get("commit"), "dirty": git.get("dirty")}
        if item not in software:
            software.append(item)
    config = entries[0].record.get("config") or {}
    seeds = {u["settings"].get("seed") for u in units}
    return {
        "dataset": datasets[0],
        "split": units[0]["split"],
        "n": units[0]["n"],
        "every": int(config.get("every") or 1),
        "perturb": str(units[0]["settings"].get("perturb", "ref")),
        "evaluations": list(dict.fromkeys(e.name for e in entries)),
        "threat_models": [{"norm": k, "eps": sorted(v)} for k, v in sorted(threats.items())],
        "attacks": attacks,
        "seeds": sorted(s for s in seeds if isinstance(s, int)),
        "software": software,
    }


def build_entry(
    run_dir: Path,
    metric: str,
    out: Path,
    paper: Paper | None = None,
    weights_url: str | None = None,
    adversarial: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """Write the entry of ``metric`` from the run's records to ``out``; returns it and a line per left-out record."""
    entries, skipped = metric_entries(run_dir, metric)
    base = Path(out).resolve().parent
    held = base / "records"
    scores = collect(entries).scores
    # the paper's certified accuracy is derived from the certified records' rows, not a record's own score
    scores = scores[~scores["evaluation"].astype(str).str.startswith(PAPER_EVALUATION)]
    sources = [_sources(entries, row) for _, row in scores.iterrows()]
    used = [e for e in entries if any(e is s for members in sources for s in members)]
    where, records, stored = {}, [], []
    for e in used:
        assert e.path is not None
        json_path = place(e.path, held)
        csv_path = place(e.path.parent / e.record["triplets_file"], held)
        where[id(e)] = relative(json_path, base)
        files = {"path": relative(csv_path, base), "sha256": digest(csv_path)}
        records.append({"path": where[id(e)], "sha256": digest(json_path), "triplets": files})
        artifact = e.path.with_name(e.path.name[: -len(".json")] + f".{ADVERSARIAL}.safetensors")
        if adversarial and e.kind == "attack" and artifact.is_file():
            kept = place(artifact, held)
            stored.append({"path": relative(kept, base), "sha256": digest(kept), "record": where[id(e)]})
    label = used[0].record["unit"]["metric"]
    registry = registry_name(label)
    entry: dict[str, Any] = {
        "format": ENTRY_FORMAT,
        "kind": "re-evaluated",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metric": {"name": label, "registry": registry},
    }
    if paper is not None and (block := paper.block()):
        entry["paper"] = block
    entry |= {
        "weights": _weights(used, registry, weights_url),
        "protocol": protocol_of(used),
        "cells": _cells(scores, sources, where),
        "records": records,
    }
    if stored:
        entry["adversarial"] = stored
    problems = schema_problems(entry)
    if problems:  # a bug here, not the user's input: say so plainly
        raise BenchError(f"the entry built from {run_dir} does not match the schema ({problems[0]}); please report it")
    atomic_write_text(Path(out), json.dumps(entry, indent=2) + "\n")
    return entry, skipped
