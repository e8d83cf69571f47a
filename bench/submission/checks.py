"""Checks 2 and 3 of ``validate``: the files an entry names, and its claims recomputed from their rows.

Files: every referenced file exists inside the entry's folder and has its sha256; every record passes the
project's own checks (bench/run/integrity.py: typed fields, checksum, its CSV's sha256 and rows, every stored
score recomputed from the rows) and is of the entry's metric. Claims: a seeded sample of cells (all when few) is
recomputed from the records' per-triplet rows (score, n, and the interval and its method where the entry gives
one), each of its stated seeds, seed and variant setting (``apgd(steps=20)``) is its records', and the protocol
(attacks and their options included) and weights the entry states are those of its records.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lipsim_bench.report.collect import Entry
from lipsim_bench.report.intervals import row_interval
from lipsim_bench.report.variants import setting
from lipsim_bench.run.integrity import read_checked
from lipsim_bench.run.records import RECORD_FORMAT, Unit
from lipsim_bench.submission.build import protocol_of
from lipsim_bench.submission.cells import cell_name, recomputed
from lipsim_bench.submission.files import digest, resolve_in

#: A claimed score (or interval bound) and the one its rows give may differ by this much (percent), no more.
TOLERANCE = 1e-6
#: Protocol fields compared with the records' (the rest is description).
PROTOCOL_FIELDS = ("dataset", "split", "n", "every", "perturb", "seeds", "threat_models")
#: Protocol lists compared with the records' as sets (an entry edited by hand may reorder them, not change them).
PROTOCOL_LISTS = ("evaluations", "attacks", "software")


@dataclass
class Check:
    """One check's verdict: problems (a claim that does not hold), or why it could not run here, or its summary."""

    name: str
    summary: str = ""
    problems: list[str] = field(default_factory=list)
    cannot: str | None = None
    skipped: bool = False  # asked not to run (``--no-rescore``)

    @property
    def passed(self) -> bool:
        return not self.problems and self.cannot is None


@dataclass
class Loaded:
    """A record the file checks passed: where the entry names it, and its rows."""

    rel: str
    path: Path
    record: dict[str, Any]
    rows: pd.DataFrame


def _file(base: Path, rel: str, sha256: str, what: str, problems: list[str]) -> Path | None:
    """The named file when it is inside the entry's folder, exists and has its sha256; else a problem line."""
    path = resolve_in(base, rel)
    if path is None:
        problems.append(f"{what} {rel}: leaves the entry's folder; paths are relative to the entry, without '..'")
    elif not path.is_file():
        problems.append(f"{what} {rel}: missing (hand it in beside the entry, at that path)")
    elif digest(path) != sha256:
        problems.append(f"{what} {rel}: its sha256 is {digest(path)}, the entry says {sha256} (edited or replaced)")
    else:
        return path
    return None


def check_files(entry: dict[str, Any], base: Path) -> tuple[Check, dict[str, Loaded], dict[str, Path]]:
    """Check 2; returns the records that passed (by their path in the entry) and the adversarial files that did."""
    check, loaded, artifacts = Check("files"), {}, {}
    metric = entry["metric"]["name"]
    for item in entry.get("records", []):
        rel = item["path"]
        json_path = _file(base, rel, item["sha256"], "record", check.problems)
        csv_path = _file(base, item["triplets"]["path"], item["triplets"]["sha256"], "triplets", check.problems)
        if json_path is None or csv_path is None:
            continue
        checked = read_checked(json_path, RECORD_FORMAT)
        if isinstance(checked, str):
            check.problems.append(f"record {rel}: fails the project's record checks: {checked}")
            continue
        record, rows = checked
        if csv_path != json_path.parent / record["triplets_file"]:
            check.problems.append(
                f"record {rel}: its triplets are {record['triplets_file']}, the entry names {csv_path}"
            )
        elif Unit(**record["unit"]).key() != record["key"]:
            check.problems.append(f"record {rel}: its key is not its unit's (the unit was edited)")
        elif record["unit"]["metric"] != metric:
            check.problems.append(f"record {rel}: is of metric {record['unit']['metric']!r}, the entry of {metric!r}")
        else:
            loaded[rel] = Loaded(rel, json_path, record, rows)
    listed = {item["path"] for item in entry.get("records", [])}
    for item in entry.get("adversarial", []):
        path = _file(base, item["path"], item["sha256"], "adversarial inputs", check.problems)
        if item["record"] not in listed:
            check.problems.append(f"adversarial inputs {item['path']}: name record {item['record']}, not in records")
        elif path is not None:
            artifacts[item["record"]] = path
    for cell in entry["cells"]:
        for rel in ([cell["record"]] if "record" in cell else []) + cell.get("seed_records", []):
            if rel not in listed:
                check.problems.append(f"cell {cell_name(cell)}: names record {rel}, not in records")
    files = len(entry.get("records", [])) * 2 + len(entry.get("adversarial", []))
    check.summary = (
        f"{files} file(s) present with their sha256; {len(loaded)} record(s) pass the project's record checks"
        if entry.get("records")
        else "no files (reported claims: nothing to check)"
    )
    return check, loaded, artifacts


def _sample(items: list[Any], size: int | None, seed: int) -> list[Any]:
    """``size`` items drawn with ``seed`` in their order (all when few, or ``size`` None)."""
    if size is None or len(items) <= size:
        return list(items)
    keep = set(random.Random(seed).sample(range(len(items)), size))
    return [item for i, item in enumerate(items) if i in keep]


def _seed_rows(cell: dict[str, Any], members: list[Loaded]) -> pd.DataFrame | str:
    """The representative's rows with each triplet's agreement averaged over the seeds (what a folded cell's
    interval is drawn from, bench/report/seeds.py), or why the seeds' rows do not line up."""
    frames = [m.rows for m in members]
    keys = [c for c in ("id", "group", "evaluation", "norm", "eps") if c in frames[0].columns]
    for other in frames[1:]:
        if len(other) != len(frames[0]) or any(not frames[0][k].astype(str).equals(other[k].astype(str)) for k in keys):
            return f"cell {cell_name(cell)}: the rows of its seeds' records are not the same triplets"
    agreement = sum(pd.to_numeric(f["agreement"], errors="coerce").to_numpy(dtype=float) for f in frames) / len(frames)
    return frames[members.index(next(m for m in members if m.rel == cell["record"]))].assign(agreement=agreement)


def _cell_problem(cell: dict[str, Any], loaded: dict[str, Loaded]) -> str | None:
    """Why a cell is not what its records' rows give (score, n, each seed's score, interval), or None."""
    where = f"cell {cell_name(cell)}"
    rels = cell.get("seed_records") or [cell["record"]]
    if cell["record"] not in rels:
        return f"{where}: its record {cell['record']} is not among its seed_records"
    if any(r not in loaded for r in rels):
        return None  # a record that failed the file checks: already a problem there
    members = [loaded[r] for r in rels]
    stated = _stated_seed_problem(cell, members, rels.index(cell["record"]))
    if stated:
        return f"{where}: {stated}"
    again = [recomputed(cell, m.rows, m.record["unit"]["split"]) for m in members]
    if any(a is None for a in again):
        return f"{where}: record {rels[again.index(None)]} has no rows for it"
    index = rels.index(cell["record"])
    named = _variant_problem(str(cell["evaluation"]), str(again[index]["evaluation"]), members[index].record)
    if named:
        return f"{where}: {named}"
    if len(members) > 1:
        for seed, claimed, found in zip(cell["seeds"], cell["seed_scores"], again):
            if abs(float(claimed) - float(found["score"])) > TOLERANCE:
                return f"{where}: claimed {float(claimed):.6f} at seed {seed}, recomputed {float(found['score']):.6f}"
    score = sum(float(a["score"]) for a in again) / len(again)
    n = int(again[0]["n"])
    if abs(float(cell["score"]) - score) > TOLERANCE or int(cell["n"]) != n:
        source = ", ".join(rels)
        return (
            f"{where}: claimed {float(cell['score']):.6f} (n {cell['n']}), recomputed {score:.6f} (n {n}) from {source}"
        )
    if "ci_low" in cell or "ci_high" in cell:
        rows = _seed_rows(cell, members) if len(members) > 1 else loaded[cell["record"]].rows
        if isinstance(rows, str):
            return rows
        representative = again[rels.index(cell["record"])]
        seed = loaded[cell["record"]].record["unit"]["settings"].get("seed")
        found = row_interval(rows, {**representative, "score": score}, seed=seed)
        for bound, value in (("ci_low", found.low), ("ci_high", found.high)):
            if bound in cell and not (math.isfinite(value) and abs(float(cell[bound]) - value) <= TOLERANCE):
                return f"{where}: claimed {bound} {float(cell[bound]):.6f}, recomputed {value:.6f}"
        if "ci_method" in cell and cell["ci_method"] != found.method:
            return f"{where}: claimed ci_method {cell['ci_method']!r}, its rows give {found.method!r}"
    return None


def _seed_of(member: Loaded) -> Any:
    return member.record["unit"]["settings"].get("seed")


def _stated_seed_problem(cell: dict[str, Any], members: list[Loaded], index: int) -> str | None:
    """Why the seeds a cell states are not its records' (one item per seed, in order), or None: a reader takes
    the cell's seeds and seed as said, so a cell that lies about them passes a wrong protocol."""
    if len(members) > 1:
        counts = [len(cell.get(key) or []) for key in ("seeds", "seed_scores", "seed_records")]
        if len(set(counts)) > 1:
            return "seeds, seed_scores and seed_records must give one item per seed, got {} / {} / {}".format(*counts)
        found = [_seed_of(m) for m in members]
        if list(cell["seeds"]) != found:
            return f"claimed seeds {cell['seeds']}, its seed_records are of seeds {found}"
    if "seed" in cell and cell["seed"] != _seed_of(members[index]):
        return f"claimed seed {cell['seed']}, its record {cell['record']} is of seed {_seed_of(members[index])}"
    return None


def _variant_problem(shown: str, stored: str, record: dict[str, Any]) -> str | None:
    """A name like ``apgd(steps=20)`` claims a setting: each ``key=value`` after the rows' own evaluation name
    ``stored`` must be the record's (bench/report/variants.py names variants so)."""
    if shown == stored:
        return None
    prefix = stored[:-1] + ", " if stored.endswith(")") and "(" in stored else stored + "("
    if not (shown.startswith(prefix) and shown.endswith(")")):
        return f"named {shown!r}, its record is of {stored!r}"
    words = shown[len(prefix) : -1]
    tokens = sorted((f"{k.replace(' ', '_')}={v}" for k, v in setting(record).items()), key=len, reverse=True)
    while words:
        token = next((t for t in tokens if words == t or words.startswith(t + ", ")), None)
        if token is None:
            key = words.split("=", 1)[0]
            held = next((t for t in tokens if t.startswith(key + "=")), f"no {key}")
            return f"named {shown!r}, but its record's setting has {held}, not {words.split(', ', 1)[0]}"
        words = words[len(token) + 2 :]
    return None


def _stated_problems(entry: dict[str, Any], loaded: dict[str, Loaded]) -> list[str]:
    """The protocol and weights the entry states, against its records'."""
    records = list(loaded.values())
    if not records:
        return []
    problems = []
    found = protocol_of([Entry(r.record, rows=r.rows, path=r.path) for r in records])
    for key in PROTOCOL_FIELDS:
        if key in entry["protocol"] and entry["protocol"][key] != found[key]:
            problems.append(f"protocol.{key}: the entry says {entry['protocol'][key]!r}, its records {found[key]!r}")
    for key in PROTOCOL_LISTS:
        stated, held = _as_set(entry["protocol"].get(key, [])), _as_set(found[key])
        if key in entry["protocol"] and stated != held:
            extra = [json.loads(t) for t in sorted(stated - held)]
            missing = [json.loads(t) for t in sorted(held - stated)]
            problems.append(f"protocol.{key}: the entry states {_difference(extra, missing)}")
    ids = sorted({str(r.record["unit"]["settings"].get("weights")) for r in records})
    stated = entry["weights"].get("id")
    if stated is not None and ids != [stated]:
        problems.append(f"weights.id: the entry says {stated!r}, its records {', '.join(ids)}")
    for file in entry["weights"].get("files", []):
        if stated and stated.startswith("sha256:") and file["sha256"] != stated.removeprefix("sha256:"):
            problems.append(f"weights.files {file['name']}: sha256 {file['sha256']} is not the records' {stated}")
    return problems


def _difference(extra: list[Any], missing: list[Any], limit: int = 240) -> str:
    """What a stated list has that the records' has not: for an attack, the options that differ from the closest
    records' attack of that name (``apgd steps 100 (its records: 3)``); else the items themselves."""

    def options(item: Any) -> dict[str, Any] | None:
        return item["options"] if isinstance(item, dict) and isinstance(item.get("options"), dict) else None

    def differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
        return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))

    parts, named = [], set()
    for item in extra:
        twins = [
            m for m in missing if options(m) is not None and options(item) is not None and m["name"] == item["name"]
        ]
        if twins:
            ours = options(item) or {}
            theirs = options(min(twins, key=lambda m: len(differing(ours, options(m) or {})))) or {}
            named.add(item["name"])
            keys = differing(ours, theirs)
            parts.append(
                f"{item['name']} " + ", ".join(f"{k} {ours.get(k)} (its records: {theirs.get(k)})" for k in keys)
            )
        else:
            parts.append(f"{json.dumps(item, sort_keys=True)}, which its records do not have")
    missing = [m for m in missing if not (isinstance(m, dict) and m.get("name") in named)]
    parts += [f"not {json.dumps(m, sort_keys=True)}, which its records have" for m in missing]
    text = "; ".join(dict.fromkeys(parts))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_set(items: Any) -> set[str]:
    return {json.dumps(item, sort_keys=True, default=str) for item in items} if isinstance(items, list) else {"?"}


def check_claims(entry: dict[str, Any], loaded: dict[str, Loaded], sample: int | None, seed: int) -> Check:
    """Check 3: a seeded sample of cells recomputed from their records' rows, and the stated protocol."""
    check = Check("cells")
    cells = [c for c in entry["cells"] if "record" in c]
    if not entry.get("records"):
        check.summary = f"{len(entry['cells'])} reported cell(s): no records to recompute them from"
        return check
    chosen = _sample(cells, sample, seed)
    check.problems = [p for c in chosen if (p := _cell_problem(c, loaded))]
    check.problems += _stated_problems(entry, loaded)
    readable = [c for c in chosen if all(r in loaded for r in c.get("seed_records") or [c["record"]])]
    intervals = sum("ci_low" in c for c in readable)
    unread = len(chosen) - len(readable)
    check.summary = (
        f"{len(readable)} of {len(entry['cells'])} cell(s) recomputed from their records' rows (seed {seed}, "
        f"tolerance {TOLERANCE:g}; {intervals} with their interval)"
        + (f"; {unread} not, their records failed the file checks" if unread else "")
        + ("; protocol and weights as the records say" if loaded else "; no record to check the protocol against")
    )
    return check
