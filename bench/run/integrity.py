"""What makes a stored record trustworthy: its own checksum, typed fields, and its CSV's row count and sha256.

A record is reused by a rerun and read by ``report`` only when every check passes; otherwise the
caller is told why (one line) and the unit is recomputed (run) or skipped (report). A truncated,
edited or odd-typed file can therefore never become a number in a table. The checksum is plain
sha256 (it catches damage); an edited and resealed score is caught by recomputing every score from
the record's own triplet rows (:mod:`lipsim_bench.run.scorecheck`).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from lipsim_bench.run.scorecheck import score_problem

TEXT_COLUMNS = {"id": str, "group": str}


def _canonical(record: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in record.items() if k != "checksum"}, sort_keys=True, default=str)


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """The record as JSON will read it back, with a checksum over everything else."""
    plain = json.loads(json.dumps(record, default=str))
    plain["checksum"] = hashlib.sha256(_canonical(plain).encode()).hexdigest()
    return plain


def csv_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is(value: Any, *types: type) -> bool:
    """isinstance that never takes a bool for a number."""
    return not isinstance(value, bool) and isinstance(value, types)


def _number(value: Any) -> bool:
    return _is(value, int, float)


def _field_problem(record: dict[str, Any], name: str, ok: bool) -> str | None:
    if name not in record:
        return f"field {name!r} is missing"
    return None if ok else f"field {name!r} has the wrong type ({type(record[name]).__name__})"


def _score_row_problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return "a score row is not an object"
    checks = {
        "split": _is(row.get("split"), str),
        "evaluation": _is(row.get("evaluation"), str),
        "score": _number(row.get("score")),
        "n": _is(row.get("n"), int),
        "norm": row.get("norm") is None or _is(row.get("norm"), str),
        "eps": row.get("eps") is None or _number(row.get("eps")),
    }
    bad = [k for k, ok in checks.items() if not ok]
    return f"score row field {bad[0]!r} is missing or has the wrong type" if bad else None


def _unit_problem(unit: dict[str, Any]) -> str | None:
    for name in ("metric", "dataset", "split", "evaluation"):
        if not _is(unit.get(name), str):
            return f"unit field {name!r} is missing or has the wrong type"
    if not (unit.get("n") is None or _is(unit.get("n"), int)) or not isinstance(unit.get("settings"), dict):
        return "unit fields 'n' or 'settings' have the wrong type"
    return None


def record_problem(record: Any, format_version: int) -> str | None:
    """Why ``record`` (parsed JSON) cannot be trusted, or None. Checks types first, then the checksum."""
    if not isinstance(record, dict):
        return "it is not a JSON object"
    if record.get("format") != format_version or not _is(record.get("format"), int):
        return f"it was written by another version (format {record.get('format')!r}, expected {format_version})"
    ev, threat = record.get("evaluation"), record.get("threat")
    checks = [
        ("key", _is(record.get("key"), str)),
        ("checksum", _is(record.get("checksum"), str)),
        ("unit", isinstance(record.get("unit"), dict)),
        ("applies", isinstance(record.get("applies"), bool)),
        (
            "evaluation",
            isinstance(ev, dict)
            and _is(ev.get("name"), str)
            and _is(ev.get("kind"), str)
            and (ev.get("output_csv") is None or _is(ev.get("output_csv"), str)),
        ),
        (
            "threat",
            threat is None
            or (isinstance(threat, dict) and _is(threat.get("norm"), str) and _number(threat.get("eps"))),
        ),
        ("position", _is(record.get("position"), int)),
        ("rows", _is(record.get("rows"), int)),
        ("scores", isinstance(record.get("scores"), list)),
        ("notes", isinstance(record.get("notes"), list) and all(_is(n, str) for n in record.get("notes", []))),
        ("config", isinstance(record.get("config"), dict)),
        ("provenance", isinstance(record.get("provenance"), dict)),
        ("triplets_file", _is(record.get("triplets_file"), str)),
        ("triplets_rows", _is(record.get("triplets_rows"), int)),
        ("triplets_sha256", _is(record.get("triplets_sha256"), str)),
    ]
    for name, ok in checks:
        if problem := _field_problem(record, name, ok):
            return problem
    problem = _unit_problem(record["unit"]) or next(filter(None, map(_score_row_problem, record["scores"])), None)
    if problem:
        return problem
    if hashlib.sha256(_canonical(record).encode()).hexdigest() != record["checksum"]:
        return "its checksum does not match its contents (the file was edited or damaged)"
    return None


def load_triplets_checked(record: dict[str, Any], folder: Path) -> pd.DataFrame | str:
    """The record's per-triplet rows if its CSV has the stored sha256 and row count, else why not."""
    name = record["triplets_file"]
    if Path(name).name != name:
        return f"its triplets file name {name!r} points outside the records folder"
    try:
        data = (folder / name).read_bytes()
    except OSError as exc:
        return f"its triplets CSV {name} cannot be read ({exc.strerror or exc})"
    if csv_digest(data) != record["triplets_sha256"]:
        return f"its triplets CSV {name} does not match the stored sha256 (truncated or edited)"
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=TEXT_COLUMNS) if data.strip() else pd.DataFrame()
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        return f"its triplets CSV {name} does not parse ({exc})"
    if len(frame) != record["triplets_rows"]:
        return f"its triplets CSV {name} has {len(frame)} rows, the record says {record['triplets_rows']}"
    return frame


def read_checked(json_path: Path, format_version: int) -> tuple[dict[str, Any], pd.DataFrame] | str:
    """A record file and its rows, every check passed; otherwise one phrase saying what is wrong."""
    try:
        record = json.loads(json_path.read_bytes().decode("utf-8"))
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "it is not valid JSON (truncated or damaged)"
    problem = record_problem(record, format_version)
    if problem:
        return problem
    frame = load_triplets_checked(record, json_path.parent)
    if isinstance(frame, str):
        return frame
    problem = score_problem(
        record["scores"], frame, record["unit"]["split"], record["evaluation"]["kind"], record["applies"]
    )
    return problem if problem else (record, frame)
