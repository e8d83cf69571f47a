"""Submitted entries (ENTRY.json, bench/submission/entry.schema.json) on the leaderboard, beside run folders.

A ``re-evaluated`` entry joins the re-evaluated tables through its records, after the cheap checks of
``validate`` (bench/submission/): the schema, every named file present with its sha256, each record passing the
project's record checks, and every cell recomputed from its record's rows. The metric itself is not re-scored
here (that needs its weights and the data: ``run_bench.py validate`` does it). A ``reported`` entry holds a
paper's claims and no evidence: its cells go to the reported section, beside the published ones, never into a
re-evaluated table. An entry that fails a check is left out, named in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lipsim_bench.errors import BenchError
from lipsim_bench.report.collect import Entry
from lipsim_bench.site.model import slug
from lipsim_bench.site.render import Submissions
from lipsim_bench.submission.checks import check_claims, check_files
from lipsim_bench.submission.schema import read_entry


def is_entry(path: Path) -> bool:
    """Whether a ``leaderboard`` argument names an entry file (a run is a folder)."""
    return Path(path).suffix.lower() == ".json" and not Path(path).is_dir()


def entry_label(path: Path) -> str:
    """``FOLDER/ENTRY.json``: how the site names an entry (its folder is the submission)."""
    path = Path(path).resolve()
    return f"{path.parent.name}/{path.name}"


def _refusal(label: str, problems: list[str]) -> str:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"left out entry {label}: {problems[0]}{more}; check it with `run_bench.py validate`"


def read_entries(paths: list[Path]) -> Submissions:
    """Each entry of ``paths`` checked (schema, files, records, cells) and sorted into re-evaluated and reported."""
    out = Submissions()
    for path in dict.fromkeys(Path(p).resolve() for p in paths):
        label = entry_label(path)
        if not path.is_file():
            raise BenchError(f"entry {path}: no such file; give an entry `run_bench.py entry` wrote, or a run folder")
        try:
            entry = read_entry(path)
        except BenchError as exc:  # a file that is no entry at all, or breaks the schema
            out.notes.append(_refusal(label, [str(exc)]))
            continue
        if entry["kind"] == "reported":  # claims only: beside the published cells, never in a re-evaluated table
            source, cells = reported_cells(label, entry)
            out.sources[cells[0]["source"]] = source
            out.cells += cells
            out.reported.append(label)
            continue
        files, loaded, _ = check_files(entry, path.parent)
        problems = files.problems or check_claims(entry, loaded, None, 0).problems
        if problems:
            out.notes.append(_refusal(label, problems))
            continue
        out.records += [(Entry(item.record, rows=item.rows, path=item.path), label) for item in loaded.values()]
    return out


def reported_cells(label: str, entry: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A reported entry as a published source and its cells (bench/report/published.json's shape)."""
    paper = entry.get("paper") or {}
    protocol = entry["protocol"]
    source = {
        "title": paper.get("title", label),
        "authors": paper.get("authors", []),
        "year": paper.get("year"),
        "url": paper.get("url"),
        "where": f"submitted entry {label}" + (f", {paper['table']}" if paper.get("table") else ""),
    }
    attacks = ", ".join(
        a["name"] + (f"(steps={a['options']['steps']})" if "steps" in a.get("options", {}) else "")
        for a in protocol.get("attacks", [])
    )
    stated = {
        "n": protocol.get("n") or "all",
        "perturbed": protocol.get("perturb"),
        "attacks": attacks or None,
        "weights": entry["weights"]["description"],
    }
    cells = [
        {
            "source": "entry-" + slug(label),
            "metric": entry["metric"]["name"],
            "dataset": protocol["dataset"],
            "split": cell["split"],
            "evaluation": cell["evaluation"],
            "norm": cell["norm"],
            "eps": cell["eps"],
            "score": cell["score"],
            "n": cell["n"],
            "protocol": {k: v for k, v in stated.items() if v is not None},
        }
        for cell in entry["cells"]
    ]
    return source, cells


__all__ = ["entry_label", "is_entry", "read_entries", "reported_cells"]
