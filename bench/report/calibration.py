"""Published cells (``published.json``) and the paper's certified accuracy, for ``run_bench.py compare``.

The data file holds numbers copied from papers, READMEs and authors' logs, each cell naming its source and
the protocol it was measured under, so a gap between a run and a paper can be read against what differs.
Nothing here is computed from the published numbers: they are only read and checked for shape.

Two certified scores exist. This project's certified 2AFC score counts soft agreement: a triplet certified at
eps adds p or 1 - p (the agreement of its decision), any other triplet min(p, 1 - p) (the worst decision). The
LipSim paper's certified accuracy (its official ``get_certified_accuracy``) rounds the targets, drops the
triplets with p = 0.5, and counts a triplet when the metric picks round(p) and its radius exceeds eps; NIGHT's
test number is the mean of the two halves weighted by each half's size. On NIGHT's fractional votes the two are
on different scales, so a paper cell is compared with :func:`paper_certified`, the soft score shown beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd

from lipsim_bench.errors import BenchError

#: The file's format; a reader of another format refuses it rather than misreading it.
PUBLISHED_FORMAT = 1

#: How each cell's score was computed (``protocol.score_definition``).
SCORE_DEFINITIONS = {
    "2afc": "soft 2AFC score: mean of (d0 < d1)(1 - p) + (d1 < d0) p + 0.5 (d0 == d1)",
    "rounded": "accuracy against rounded targets (the metric's choice == round(p))",
    "paper-certified": "the LipSim paper's certified accuracy: p = 0.5 dropped, correct (choice == round(p)) "
    "and radius > eps",
    "soft-certified": "this project's certified score: agreement inside the radius, min(p, 1 - p) outside",
}

_TEXT_OR_NULL = {"type": ["string", "null"]}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["format", "sources", "cells"],
    "properties": {
        "format": {"const": PUBLISHED_FORMAT},
        "sources": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["title", "authors", "year", "where", "url"],
                "properties": {
                    "title": {"type": "string"},
                    "authors": {"type": "string"},
                    "year": {"type": "integer"},
                    "where": {"type": "string"},
                    "url": {"type": "string"},
                },
            },
        },
        "cells": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["source", "metric", "dataset", "split", "evaluation", "norm", "eps", "score", "n"],
                "properties": {
                    "source": {"type": "string"},
                    "metric": {"type": "string"},
                    "dataset": {"type": "string"},
                    "split": {"type": "string"},
                    "evaluation": {"type": "string"},
                    "norm": {"enum": ["l2", "linf", None]},
                    "eps": {"type": ["number", "null"], "minimum": 0},
                    "score": {"type": "number", "minimum": 0, "maximum": 100},
                    "n": {"type": ["integer", "null"], "minimum": 1},
                    "protocol": {
                        "type": "object",
                        "properties": {
                            "steps": {"type": ["integer", "null"]},
                            "restarts": {"type": ["integer", "null"]},
                            "preprocessing": _TEXT_OR_NULL,
                            "score_definition": {"enum": [*SCORE_DEFINITIONS, None]},
                            "weights": _TEXT_OR_NULL,
                            "attack": _TEXT_OR_NULL,
                            "notes": _TEXT_OR_NULL,
                        },
                    },
                },
            },
        },
    },
}

#: Registry aliases, so a cell published for one name matches a run of the other.
ALIASES = {"lipsim": "lipsim-margin0.5", "rclip": "rclip-tecoa-convnext"}


def canonical_metric(name: str) -> str:
    return ALIASES.get(name, name)


@dataclass(frozen=True)
class Published:
    """The published cells as a frame (one row per cell, protocol fields as columns) and their sources."""

    cells: pd.DataFrame
    sources: dict[str, dict[str, Any]]
    path: str


PROTOCOL_FIELDS = ("steps", "restarts", "preprocessing", "score_definition", "weights", "attack", "notes")


def default_published_path() -> Path:
    """The data file shipped with the package."""
    return Path(str(resources.files("lipsim_bench.report") / "published.json"))


def read_published_data(path: Path | None = None) -> dict[str, Any]:
    """The published-cells file as JSON, checked: :data:`SCHEMA`, declared sources, radius with its norm, one
    number per cell and source. ``compare`` and the leaderboard site both read it here; a bad file is one line."""
    path = path or default_published_path()
    try:
        data = json.loads(Path(path).read_text(), parse_constant=_not_a_number)
    except FileNotFoundError:
        raise BenchError(f"--published {path}: no such file; give a JSON file of published cells") from None
    except (OSError, ValueError) as err:
        raise BenchError(
            f"--published {path}: not readable JSON ({err}); give a file in the published.json format"
        ) from None
    try:
        jsonschema.validate(data, SCHEMA)
    except jsonschema.ValidationError as err:
        where = "/".join(map(str, err.absolute_path)) or "top level"
        raise BenchError(
            f"--published {path}: {where}: {err.message}; see docs/calibration.md for the format"
        ) from None
    unknown = sorted({c["source"] for c in data["cells"]} - set(data["sources"]))
    if unknown:
        raise BenchError(
            f"--published {path}: cells name undeclared source(s) {', '.join(unknown)}; add them to sources"
        )
    _check_cells(path, data["cells"])
    return data


def load_published(path: Path | None = None) -> Published:
    """The published cells of ``path`` (default: the shipped file) as a frame, checked by :func:`read_published_data`."""
    path = path or default_published_path()
    data = read_published_data(path)
    rows = []
    for cell in data["cells"]:
        protocol = cell.get("protocol") or {}
        rows.append(
            {
                **{
                    k: cell[k]
                    for k in ("source", "metric", "dataset", "split", "evaluation", "norm", "eps", "score", "n")
                },
                **{f"protocol_{k}": protocol.get(k) for k in PROTOCOL_FIELDS},
            }
        )
    return Published(pd.DataFrame(rows), data["sources"], str(path))


def _not_a_number(word: str) -> float:
    """JSON has no NaN or Infinity (Python writes them): a published score is a number or the cell is left out."""
    raise ValueError(f"{word} is not a number; give the published value, or leave the cell out")


_KEY = ("source", "metric", "dataset", "split", "evaluation", "norm", "eps")


def _check_cells(path: Path, cells: list[dict[str, Any]]) -> None:
    """What the schema cannot say: a radius needs its norm (and a norm its radius), and one source gives one
    number per cell; either mistake would otherwise match nothing, or two different numbers, silently."""
    seen: dict[tuple, int] = {}
    for i, cell in enumerate(cells):
        if (cell["norm"] is None) != (cell["eps"] is None):
            raise BenchError(
                f"--published {path}: cells/{i}: norm {cell['norm']!r} with eps {cell['eps']!r}; give both (an "
                "attack or certified cell) or neither (natural)"
            )
        key = tuple(cell[k] for k in _KEY)
        if key in seen:
            raise BenchError(
                f"--published {path}: cells/{i} repeats cells/{seen[key]} ({cell['source']} {cell['metric']} "
                f"{cell['evaluation']}, same dataset, split, norm and eps); keep one number per cell and source"
            )
        seen[key] = i
