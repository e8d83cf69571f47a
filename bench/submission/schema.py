"""The entry schema (``entry.schema.json``, JSON Schema 2020-12) and the one-line reading of its errors.

The schema says what an entry must hold before anything is recomputed: a validator that crashed on a missing
field, or accepted a path out of the entry's folder, would check nothing. The ``jsonschema`` library does the
checking; here an error becomes one line naming the JSON path and what is wrong there.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from lipsim_bench.errors import BenchError

#: The entry format this code writes and reads (the schema's ``format`` const).
ENTRY_FORMAT = 1
SCHEMA_FILE = "entry.schema.json"


@lru_cache(maxsize=1)
def entry_schema() -> dict[str, Any]:
    """The schema as shipped with the package (package data ``submission/*.schema.json``)."""
    return json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def _validator() -> Draft202012Validator:
    return Draft202012Validator(entry_schema())


def _line(error: ValidationError) -> str:
    """``$.cells[0].score: 150 is greater than the maximum of 100``."""
    message = error.message
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{error.json_path}: {message}"


def schema_problems(entry: Any) -> list[str]:
    """Every schema error of ``entry``, most relevant first, one line each (empty when it conforms)."""
    errors = list(_validator().iter_errors(entry))
    if not errors:
        return []
    first = best_match(errors)
    rest = sorted((e for e in errors if e is not first), key=lambda e: (list(e.absolute_path).__repr__(), e.message))
    return [_line(first)] + [_line(e) for e in rest]


def read_entry(path: Path) -> dict[str, Any]:
    """The entry file, parsed and checked against the schema; otherwise one line naming the path and the fix."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise BenchError(f"cannot read entry {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BenchError(f"entry {path} is not UTF-8 text; give the JSON file `run_bench.py entry` wrote") from None
    try:
        entry = json.loads(text)
    except ValueError as exc:
        raise BenchError(f"entry {path} is not valid JSON ({exc}); give the file `run_bench.py entry` wrote") from None
    problems = schema_problems(entry)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BenchError(f"entry {path} does not match the entry schema: {problems[0]}{more}")
    return entry
