"""``run_bench.py validate ENTRY``: whether an entry's claims hold, check by check.

1. schema (entry.schema.json), 2. files (present, sha256, the project's record checks), 3. cells (a seeded
sample recomputed from the records' per-triplet rows; protocol and weights as the records say), 4. rescoring
(the metric rebuilt and run on the stored adversarial inputs). Exit status: 0 every check holds; 1 a claim does
not hold; 2 the entry cannot be read or breaks the schema, or a check cannot run here (say where the data or
weights are, or skip it with ``--no-rescore``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lipsim_bench.submission.checks import Check, check_claims, check_files
from lipsim_bench.submission.rescore import check_rescore
from lipsim_bench.submission.schema import read_entry

ACCEPTED, REJECTED, CANNOT = 0, 1, 2


@dataclass(frozen=True)
class Options:
    """How much to recompute: cells and adversarial inputs drawn with ``seed`` (None: all of them)."""

    cells: int | None = 50
    inputs: int | None = 64
    seed: int = 0
    rescore: bool = True
    dataset: str | None = None
    device: str = "cpu"


@dataclass
class Verdict:
    entry: dict[str, Any]
    checks: list[Check]

    @property
    def code(self) -> int:
        if any(c.problems for c in self.checks):
            return REJECTED
        return CANNOT if any(c.cannot for c in self.checks) else ACCEPTED

    def lines(self, limit: int = 5) -> list[str]:
        """A verdict line per check (up to ``limit`` problems each), then the entry's."""
        out = []
        for check in self.checks:
            if check.problems:
                out.append(f"{check.name}: FAILED ({len(check.problems)} problem(s))")
                out += [f"  - {p}" for p in check.problems[:limit]]
                if len(check.problems) > limit:
                    out.append(f"  - ... and {len(check.problems) - limit} more")
            elif check.skipped:
                out.append(f"{check.name}: skipped: {check.summary}")
            elif check.cannot:
                out.append(f"{check.name}: CANNOT RUN HERE: {check.cannot}")
            else:
                out.append(f"{check.name}: ok: {check.summary}")
        metric, kind = self.entry["metric"]["name"], self.entry["kind"]
        word = {ACCEPTED: "accepted", REJECTED: "REJECTED", CANNOT: "not fully checked"}[self.code]
        out.append(f"verdict: {word} ({metric}, {kind}, {len(self.entry['cells'])} cell(s))")
        return out


def validate(path: Path, options: Options = Options()) -> Verdict:
    """Every check of the entry at ``path``; a schema error is a BenchError (one line, exit 2)."""
    entry = read_entry(Path(path))
    base = Path(path).resolve().parent
    schema = Check("schema", summary=f"entry format {entry['format']}, kind {entry['kind']}")
    files, loaded, artifacts = check_files(entry, base)
    claims = check_claims(entry, loaded, options.cells, options.seed)
    checks = [schema, files, claims]
    if options.rescore:
        checks.append(
            check_rescore(
                entry,
                loaded,
                artifacts,
                sample=options.inputs,
                seed=options.seed,
                dataset=options.dataset,
                device=options.device,
            )  # fmt: skip
        )
    else:
        checks.append(Check("rescoring", summary="--no-rescore", skipped=True))
    return Verdict(entry, checks)
