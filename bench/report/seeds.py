"""Cells run under several seeds (``--seeds 0,1,2``): one cell, the mean over its seeds, with spread and worst case.

Which records fold: those of one cell whose settings are the same but for the seed (the seed itself, the seed in
the attack's options, and the keys of the units they build on or read, which hold the seed too), at the seeds a
``--seeds`` run asked for (each record's ``config.seeds``; a record reused from an earlier ``--seed`` run counts
when its seed is among them). A record at a seed no ``--seeds`` run named stays apart as before: another column
(bench/report/variants.py), so two ``--seed`` runs are never averaged behind the user's back.

A folded record keeps its representative's identity (the seed most records of the table share, so the title's
seed and the seed-independent cells agree), its scores become the mean over seeds, and its per-triplet
``agreement`` the mean over seeds triplet by triplet (the other columns are the representative seed's): the score
is then still the mean of its rows, and the interval over triplets (bench/report/intervals.py) is the interval of
the seed-averaged score. The spread (sample sd, min-max) and the worst case (the lowest score over seeds) go to
scores.csv (``seeds``, ``seed_scores``, ``seed_sd``, ``seed_worst``) and to seeds.csv / seeds.md, a row per cell.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from lipsim_bench.formatting import format_eps
from lipsim_bench.io import atomic_write_text
from lipsim_bench.tasks.base import TaskInfo

#: scores.csv columns of a folded cell: its seeds ("0,1,2"), their scores in that order, their sample sd, the lowest
SEED_COLUMNS = ["seeds", "seed_scores", "seed_sd", "seed_worst"]
SEED_FILES = ("seeds.csv", "seeds.md")
#: per-triplet columns that say which triplet and radius a row is: equal across the seeds of a folded record
ROW_IDENTITY = ("id", "group", "evaluation", "norm", "eps")
#: unit settings that hold the seed, or keys that hold it (the units a unit builds on or reads)
SEEDED_SETTINGS = ("seed", "builds_on", "depends_on")


class EntryLike(Protocol):
    """bench/report/collect.py's Entry: a record and a way to its per-triplet rows."""

    record: dict[str, Any]

    def frame(self) -> pd.DataFrame | None: ...


def _seed(record: dict[str, Any]) -> int | None:
    seed = ((record.get("unit") or {}).get("settings") or {}).get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def _declared(record: dict[str, Any]) -> set[int]:
    """The seeds of the ``--seeds`` run that wrote this record (empty for a one-seed run)."""
    seeds = (record.get("config") or {}).get("seeds")
    return {s for s in seeds if isinstance(s, int)} if isinstance(seeds, list) and len(seeds) > 1 else set()


def _same_but_seed(record: dict[str, Any]) -> str:
    """Everything that makes the record's cell but the seed: records with equal text fold over seeds."""
    unit = record.get("unit") or {}
    settings = {k: v for k, v in (unit.get("settings") or {}).items() if k not in SEEDED_SETTINGS}
    if isinstance(settings.get("options"), dict):
        settings["options"] = {k: v for k, v in settings["options"].items() if k != "seed"}
    evaluation = (record.get("evaluation") or {}).get("name")
    every = (record.get("config") or {}).get("every", 1)
    fields = [unit.get(k) for k in ("metric", "dataset", "split", "n", "evaluation")] + [evaluation, every, settings]
    return json.dumps(fields, sort_keys=True, default=str)


def _stamp(record: dict[str, Any]) -> tuple[str, int]:
    prov = record.get("provenance") if isinstance(record.get("provenance"), dict) else {}
    ns = prov.get("time_ns")
    return str(prov.get("time", "")), ns if isinstance(ns, int) and not isinstance(ns, bool) else 0


def _row_key(row: dict[str, Any]) -> tuple:
    eps = row.get("eps")
    eps = None if eps is None or (isinstance(eps, float) and math.isnan(eps)) else round(float(eps), 12)
    norm = row.get("norm") if isinstance(row.get("norm"), str) else None
    return row.get("split"), row.get("evaluation"), norm, eps


def _aligned(frames: list[pd.DataFrame]) -> bool:
    """Whether the seeds' per-triplet rows are the same triplets and radii in the same order."""
    first = frames[0]
    if "agreement" not in first.columns:
        return False
    for other in frames[1:]:
        if len(other) != len(first) or "agreement" not in other.columns:
            return False
        for column in (c for c in ROW_IDENTITY if c in first.columns):
            if column not in other.columns or not first[column].astype(str).equals(other[column].astype(str)):
                return False
    return True


def _fold(members: list[EntryLike], representative: EntryLike) -> EntryLike | None:
    """One entry for the seeds of one cell; None where their rows do not line up (then they stay apart)."""
    ordered = sorted(members, key=lambda e: _seed(e.record) or 0)
    seeds = [_seed(e.record) for e in ordered]
    frames = [e.frame() for e in ordered]
    if any(f is None for f in frames) or not _aligned(frames):  # type: ignore[arg-type]
        return None
    by_key = [{_row_key(r): r for r in e.record.get("scores", [])} for e in ordered]
    if any(set(keys) != set(by_key[0]) for keys in by_key[1:]):
        return None
    scores = []
    for row in representative.record.get("scores", []):
        values = np.array([float(keys[_row_key(row)]["score"]) for keys in by_key])
        scores.append(
            {
                **row,
                "score": float(values.mean()),
                "seeds": ",".join(map(str, seeds)),
                "seed_scores": ",".join(f"{v:.6g}" for v in values),
                "seed_sd": float(values.std(ddof=1)),
                "seed_worst": float(values.min()),
            }
        )
    agreement = np.mean([pd.to_numeric(f["agreement"]).to_numpy(dtype=float) for f in frames], axis=0)  # type: ignore[index]
    rows = frames[next(k for k, e in enumerate(ordered) if e is representative)].assign(agreement=agreement)  # type: ignore[union-attr]
    return replace(representative, record={**representative.record, "scores": scores}, rows=rows)  # type: ignore[type-var]


def fold_seeds(entries: list[EntryLike]) -> tuple[list[EntryLike], list[str]]:
    """The entries with each cell run under several seeds folded into one (at its representative's place), and
    the footer line saying so; entries of one seed pass unchanged."""
    seeds_seen = Counter(s for s in (_seed(e.record) for e in entries) if s is not None)
    groups: dict[str, list[int]] = {}
    for i, entry in enumerate(entries):
        if _seed(entry.record) is not None:
            groups.setdefault(_same_but_seed(entry.record), []).append(i)
    replaced: dict[int, EntryLike] = {}
    dropped: set[int] = set()
    folded_seeds: set[int] = set()
    items = "triplets"
    for members in groups.values():
        declared = set().union(*(_declared(entries[i].record) for i in members))
        newest: dict[int, int] = {}
        for i in sorted(members, key=lambda i: _stamp(entries[i].record)):
            if _seed(entries[i].record) in declared:
                newest[_seed(entries[i].record)] = i  # type: ignore[index]
        if len(newest) < 2:
            continue
        rep_seed = min(newest, key=lambda s: (-seeds_seen[s], s))
        chosen = [entries[i] for i in newest.values()]
        others = {i for i in members if _seed(entries[i].record) in newest and _seed(entries[i].record) != rep_seed}
        if not any(e.record.get("scores") for e in chosen):  # a diagnostic, or a unit that does not apply
            dropped |= others  # one seed's rows stand for the cell (a histogram, a "does not apply" line)
            continue
        if not all(e.record.get("scores") for e in chosen):
            continue
        one = _fold(chosen, entries[newest[rep_seed]])
        if one is not None:
            replaced[newest[rep_seed]] = one
            dropped |= others  # an older record of the representative's seed stays: variants.py counts it replaced
            folded_seeds |= set(newest)
            items = TaskInfo.from_dict(one.record.get("task")).items
    kept = [replaced.get(i, e) for i, e in enumerate(entries) if i not in dropped]
    return kept, [seed_note(sorted(folded_seeds), items)] if folded_seeds else []


def seed_note(seeds: list[int], items: str = "triplets") -> str:
    """The table's footer line on cells averaged over seeds (``items``: the task's, e.g. queries)."""
    return (
        f"cells of evaluations that draw at random (attacks with random starts, smoothing, and what reads them): the "
        f"mean over seeds {', '.join(map(str, seeds))}, their interval over {items} of the seed-averaged agreement; "
        "spread and worst case over seeds in seeds.md (scores.csv: seed_sd, seed_worst); the other cells ran once"
    )


def seeds_table(scores: pd.DataFrame) -> pd.DataFrame:
    """A row per folded cell: its seeds' scores, mean, sample sd, min, max and worst case (the min)."""
    if "seeds" not in scores.columns:
        return pd.DataFrame()
    rows = scores[scores["seeds"].notna() & (scores["seeds"].astype(str) != "")]
    out = []
    for row in rows.itertuples():
        seeds = [int(s) for s in str(row.seeds).split(",")]
        values = [float(v) for v in str(row.seed_scores).split(",")]
        out.append(
            {
                "metric": row.metric,
                "dataset": getattr(row, "dataset", None),
                "split": row.split,
                "evaluation": row.evaluation,
                "norm": row.norm,
                "eps": row.eps,
                "n": row.n,
                "seeds": len(seeds),
                "mean": row.score,
                "sd": row.seed_sd,
                "min": min(values),
                "max": max(values),
                "worst": row.seed_worst,
                **{f"seed {s}": v for s, v in zip(seeds, values)},
            }
        )
    table = pd.DataFrame(out)
    if table.empty:
        return table
    # the main table's order: metrics and evaluations as they come, radii ascending (not 36/255, 72/255, 0.25)
    first = {key: {v: i for i, v in enumerate(dict.fromkeys(table[key]))} for key in ("metric", "evaluation")}
    keys = pd.DataFrame(
        {
            "metric": table["metric"].map(first["metric"]),
            "evaluation": table["evaluation"].map(first["evaluation"]),
            "norm": table["norm"].astype(str),
            "eps": pd.to_numeric(table["eps"], errors="coerce"),
        }
    )
    return table.loc[keys.sort_values(list(keys.columns), kind="stable").index].reset_index(drop=True)


def seeds_markdown(table: pd.DataFrame) -> str:
    """seeds.md: the spread over seeds, one line per cell."""
    per_seed = [c for c in table.columns if c.startswith("seed ")]
    header = ["metric", "split", "cell", "n", "mean", "sd", "min - max", "worst", *per_seed]
    lines = [
        "Scores (%) over seeds: each cell's mean (the table's number), sample sd, range and worst case (its lowest "
        "score: the strongest of its seeds' runs)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * 3 + "---:|" * (len(header) - 3),
    ]
    for row in table.to_dict("records"):
        norm, eps = row["norm"] if isinstance(row["norm"], str) else "", row["eps"]
        cell = " ".join(p for p in (str(row["evaluation"]), norm, "" if pd.isna(eps) else format_eps(float(eps))) if p)
        values = [row["mean"], row["sd"], f"{row['min']:.2f} - {row['max']:.2f}", row["worst"]]
        values += [row[c] for c in per_seed]
        text = [v if isinstance(v, str) else ("" if pd.isna(v) else f"{v:.2f}") for v in values]
        lines.append(f"| {row['metric']} | {row['split']} | {cell} | {int(row['n'])} | " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"


def write_seeds(out_dir: Path, scores: pd.DataFrame) -> list[str]:
    """seeds.csv and seeds.md where some cell was run under several seeds; an old pair removed otherwise."""
    table = seeds_table(scores)
    if table.empty:
        for name in SEED_FILES:
            if (out_dir / "records").is_dir() and (out_dir / name).is_file():
                (out_dir / name).unlink()  # a rerun without several seeds must not leave their spread behind
        return []
    atomic_write_text(out_dir / "seeds.csv", table.to_csv(index=False))
    atomic_write_text(out_dir / "seeds.md", seeds_markdown(table))
    return list(SEED_FILES)
