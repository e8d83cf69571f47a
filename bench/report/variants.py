"""One setting per cell: which records a table shows, and under which column name.

A run folder keeps every record written into it. Two records of the same cell (metric, split,
evaluation, norm, eps) are resolved by what made them differ:

- the same *setting* (what the user chose: n, --every, seed, precision, batch size where it changes
  draws, the evaluation's options such as steps): the newer one is a recomputation (the code, the
  data's content or the weights changed) and replaces the older one, and the footer counts it;
- another setting: both are kept. The setting most of the evaluation's cells share (on a tie: more
  triplets, then no subsample, then the earliest) keeps the plain column ("apgd l2 0.5"); every other
  setting of a clashing cell gets its own column named by how it differs ("apgd(steps=20) l2 0.5"), so
  a 20-step rerun never replaces a 100-step cell.

Refusing the second run was the alternative; it was not chosen because it would stop ``report A B``
from comparing two folders, and a run would have to read its folder before computing anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Options that are the cell's column (eps; not for a diagnostic, which has no columns) or part of the
#: setting under their own name (seed).
NOT_OPTIONS = ("eps", "seed")


def _text(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True) if isinstance(value, (list, dict)) else str(value)


def setting(record: dict[str, Any]) -> dict[str, str]:
    """What the user chose for this record (never the code's, the data's or the weights' identity)."""
    unit = record.get("unit") or {}
    settings = unit.get("settings") or {}
    config = record.get("config") or {}
    chosen: dict[str, Any] = {
        "n": unit.get("n") if unit.get("n") is not None else "all",
        "every": config.get("every", 1),
        "seed": settings.get("seed"),
        "precision": settings.get("precision", "fp32"),
        "perturb": settings.get("perturb", "ref"),  # another target is another setting (its own column)
    }
    if settings.get("batch_size") is not None:
        chosen["batch size"] = settings["batch_size"]
    options = settings.get("options") if isinstance(settings.get("options"), dict) else {}
    owner = str((record.get("evaluation") or {}).get("name", "")).split("(", 1)[0]
    skip = (
        {"seed"} if _kind(record) == "diagnostic" else set(NOT_OPTIONS)
    )  # a diagnostic has no eps column: eps is its setting
    for key, value in sorted(options.items()):
        if key not in skip:  # an option named like a run setting (smoothing's n) says whose it is
            chosen[f"{owner}.{key}" if key in chosen else key] = value
    return {k: _text(v) for k, v in chosen.items()}


def why_recomputed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two records of the same setting (the adapter's source, the data, torch, the device...)."""
    before, after = (r.get("unit", {}).get("settings") or {} for r in (old, new))
    return sorted(k for k in set(before) | set(after) if k not in ("options", "seed") and before.get(k) != after.get(k))


def setting_key(record: dict[str, Any]) -> str:
    return json.dumps(setting(record), sort_keys=True)


def variant_name(evaluation: str, differs: dict[str, str]) -> str:
    """``apgd`` + {steps: 20} -> ``apgd(steps=20)``; ``smoothing(sigma=0.25)`` -> ``smoothing(sigma=0.25, n=4)``."""
    words = ", ".join(f"{k.replace(' ', '_')}={v}" for k, v in differs.items())
    if evaluation.endswith(")") and "(" in evaluation:
        return f"{evaluation[:-1]}, {words})"
    return f"{evaluation}({words})"


@dataclass
class Resolution:
    """Which score rows and records stay, and the column name of each record that needs its own."""

    dropped_rows: set[int] = field(default_factory=set)  # row positions replaced by a newer row of the same setting
    dropped_records: set[int] = field(default_factory=set)  # records all of whose cells (or whose note) were replaced
    names: dict[int, str] = field(default_factory=dict)  # record -> its evaluation's column name where it differs
    differs: dict[int, dict[str, str]] = field(
        default_factory=dict
    )  # record -> how its setting differs (names its rows)
    changed: set[str] = field(default_factory=set)  # what changed where a newer record replaced an older one


def stamp(record: dict[str, Any]) -> tuple[str, int]:
    """When a record was computed, for "newer": its ISO time, then nanoseconds (0 where unreadable)."""
    prov = record.get("provenance") if isinstance(record.get("provenance"), dict) else {}
    ns = prov.get("time_ns")
    return str(prov.get("time", "")), ns if isinstance(ns, int) and not isinstance(ns, bool) else 0


def _slot(record: dict[str, Any]) -> tuple:
    unit = record.get("unit") or {}
    return unit.get("metric"), unit.get("dataset"), (record.get("evaluation") or {}).get("name")


def _kind(record: dict[str, Any]) -> str:
    return str((record.get("evaluation") or {}).get("kind", ""))


def resolve(records: list[dict[str, Any]], rows: list[tuple[int, tuple]]) -> Resolution:
    """``rows``: (record index, cell) per score row, in order. Newest per (cell, setting); other settings named apart."""
    keys = [setting_key(r) for r in records]
    stamps = [stamp(r) for r in records]
    out = Resolution()
    newest: dict[tuple, int] = {}
    for position, (i, cell) in enumerate(rows):
        slot = (cell, keys[i])
        if slot in newest:
            older, newer = sorted((newest[slot], position), key=lambda p: stamps[rows[p][0]])
            out.dropped_rows.add(older)
            out.changed.update(why_recomputed(records[rows[older][0]], records[rows[newer][0]]))
            position = newer
        newest[slot] = position
    # a record without scores that does not apply is replaced by any newer record of its metric and evaluation,
    # and replaces older cells of its setting: its note and those cells never stand side by side
    for i, record in enumerate(records):
        if record.get("scores"):
            continue
        same = [j for j, other in enumerate(records) if j != i and _slot(other) == _slot(record)]
        if _kind(record) == "diagnostic":
            if any(stamps[j] > stamps[i] and keys[j] == keys[i] for j in same):
                out.dropped_records.add(i)
        elif any(stamps[j] > stamps[i] for j in same):
            out.dropped_records.add(i)
        else:
            older = {j for j in same if stamps[j] < stamps[i] and keys[j] == keys[i]}
            out.dropped_rows |= {p for p, (j, _) in enumerate(rows) if j in older}
            for j in older:
                out.changed.update(why_recomputed(records[j], record))
    live = [p for p in range(len(rows)) if p not in out.dropped_rows]
    with_rows = {rows[p][0] for p in live}
    out.dropped_records |= {i for i, r in enumerate(records) if r.get("scores") and i not in with_rows}
    _name_variants(records, [rows[p] for p in live], keys, stamps, out)
    _name_diagnostics(records, keys, stamps, out)
    return out


def _thoroughness(key: str) -> tuple[float, float]:
    """(-n, every) of a setting: more triplets first, then the full split before a subsample."""
    chosen = json.loads(key)

    def number(text: str | None, missing: float) -> float:
        try:
            return float(text) if text is not None else missing
        except ValueError:
            return missing

    return -number(chosen.get("n"), float("inf")), number(chosen.get("every"), 1.0)


def _name_variants(
    records: list[dict[str, Any]],
    rows: list[tuple[int, tuple]],
    keys: list[str],
    stamps: list[tuple[str, int]],
    out: Resolution,
) -> None:
    """Where one cell holds several settings, all but the evaluation's main one get their own column name."""
    by_cell: dict[tuple, set[str]] = {}
    count: dict[tuple, dict[str, int]] = {}
    first: dict[str, tuple[str, int]] = {}
    for i, cell in rows:
        by_cell.setdefault(cell, set()).add(keys[i])
        group = (cell[1], cell[3])  # (dataset, evaluation)
        count.setdefault(group, {}).setdefault(keys[i], 0)
        count[group][keys[i]] += 1
        first[keys[i]] = min(first.get(keys[i], stamps[i]), stamps[i])
    # the main setting of an evaluation: the one most of its cells share; on a tie the one on more triplets
    # (as the title's n), then on every triplet rather than a subsample, then the earliest
    rank = {
        group: sorted(found, key=lambda k: (-found[k], *_thoroughness(k), first[k])) for group, found in count.items()
    }
    apart: set[tuple[tuple, str]] = set()
    for cell, found in by_cell.items():
        if len(found) > 1:
            order = rank[(cell[1], cell[3])]
            apart |= {((cell[1], cell[3]), k) for k in sorted(found, key=order.index)[1:]}
    for i, record in enumerate(records):
        unit, name = record.get("unit") or {}, (record.get("evaluation") or {}).get("name")
        group = (unit.get("dataset"), name)
        if (group, keys[i]) in apart:
            main, own = json.loads(rank[group][0]), json.loads(keys[i])
            differs = {k: v for k, v in own.items() if main.get(k) != v}
            out.names[i] = variant_name(str(name), differs)
            out.differs[i] = differs


def _name_diagnostics(
    records: list[dict[str, Any]], keys: list[str], stamps: list[tuple[str, int]], out: Resolution
) -> None:
    """Diagnostics of one metric at several settings: the earliest keeps the metric's name, the others are named apart."""
    groups: dict[tuple, list[int]] = {}
    for i, record in enumerate(records):
        if _kind(record) == "diagnostic" and i not in out.dropped_records:
            groups.setdefault(_slot(record), []).append(i)
    for (_, _, name), members in groups.items():
        members.sort(key=lambda i: stamps[i])
        main = json.loads(keys[members[0]])
        for i in members[1:]:
            if keys[i] != keys[members[0]]:
                own = json.loads(keys[i])
                out.differs[i] = {k: v for k, v in own.items() if main.get(k) != v}
                out.names[i] = variant_name(str(name), out.differs[i])
