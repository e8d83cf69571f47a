"""Where a cell's number came from: the record behind it, and the code, packages, weights, seed and compute time
that record names; shown per cell on each metric's page (every field may be missing in an old record)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from lipsim_bench.report.collect import Entry


def number(value: Any) -> float | None:
    """A finite-or-None float of a record's field (None, NaN, bools and text are None)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


@dataclass
class Provenance:
    """Where one cell's number came from: its record and the code, packages, weights and seed behind it."""

    run: str
    record: str
    commit: str
    dirty: bool
    version: str
    env: str
    seed: Any
    weights: str
    weights_text: str
    seconds: float | None
    device: str
    time: str
    options: str
    where: str = ""  # the record file as the site names it: RUN/records/NAME.json, or ENTRY_FOLDER/records/NAME.json


def _environment(record: dict[str, Any], environments: dict[str, dict[str, Any]]) -> str:
    """A short label (env 1, env 2, ...) for the record's package set, shared by every cell computed in it."""
    prov = record.get("provenance") if isinstance(record.get("provenance"), dict) else {}
    packages = prov.get("packages") if isinstance(prov.get("packages"), dict) else {}
    described = {
        "lipsim-bench": str(prov.get("lipsim_bench", "unknown")),
        "python": str(prov.get("python", "unknown")),
        "platform": str(prov.get("platform", "unknown")),
        **{str(k): str(v) for k, v in sorted(packages.items())},
    }
    for label, known in environments.items():
        if known == described:
            return label
    label = f"env {len(environments) + 1}"
    environments[label] = described
    return label


def provenance(entry: Entry, run: str, environments: dict[str, dict[str, Any]]) -> Provenance:
    """The provenance of the cells one record computed (every field may be missing in an old record)."""
    record = entry.record
    prov = record.get("provenance") if isinstance(record.get("provenance"), dict) else {}
    git = prov.get("git") if isinstance(prov.get("git"), dict) else {}
    settings = (record.get("unit") or {}).get("settings") or {}
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    conventions = record.get("conventions") if isinstance(record.get("conventions"), dict) else {}
    options = settings.get("options") if isinstance(settings.get("options"), dict) else {}
    shown = ", ".join(f"{k} {plain(v)}" for k, v in sorted(options.items()) if k not in ("seed", "eps", "attack"))
    return Provenance(
        run=run,
        record=entry.path.name if entry.path else "",
        commit=str(git.get("commit") or "unknown"),
        dirty=bool(git.get("dirty")),
        version=str(prov.get("lipsim_bench", "unknown")),
        env=_environment(record, environments),
        seed=settings.get("seed"),
        weights=str(settings.get("weights") or "none"),
        weights_text=str(conventions.get("weights") or "not stated"),
        seconds=number(config.get("seconds")),
        device=str(settings.get("device") or config.get("device") or ""),
        time=str(prov.get("time", "unknown")),
        options=shown,
        where=_where(entry, run),
    )


def _where(entry: Entry, run: str) -> str:
    """The record's file under its run folder, or under its entry's folder (an entry's label is FOLDER/FILE.json)."""
    name = entry.path.name if entry.path else ""
    folder = entry.path.parent.name if entry.path else "records"
    return f"{run.rsplit('/', 1)[0] if run.endswith('.json') else run}/{folder}/{name}"


def plain(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


__all__ = ["Provenance", "number", "plain", "provenance"]
