"""Published ("reported") cells, kept apart from the re-evaluated ones: numbers a paper printed, with their
source, that no run here recomputed. Read from bench/report/published.json (or ``--published FILE``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lipsim_bench.report.calibration import read_published_data
from lipsim_bench.report.tables import column_label


def default_published() -> Path:
    """The bundled calibration file (written by the calibration work; absent before it)."""
    import lipsim_bench.report

    return Path(lipsim_bench.report.__file__).parent / "published.json"


@dataclass
class ReportedCell:
    score: float
    n: int | None
    protocol: str


@dataclass
class ReportedRow:
    """A metric's cells from one source; ``protocol`` is what its cells share (a cell's own says how it differs)."""

    metric: str
    source: str
    protocol: str
    cells: list[ReportedCell | None]


@dataclass
class ReportedTable:
    """Published cells of one dataset and split: a row per (metric, source), a column per evaluation and radius."""

    dataset: str
    split: str
    columns: list[str]
    rows: list[ReportedRow] = field(default_factory=list)


@dataclass
class Reported:
    sources: dict[str, dict[str, Any]]
    tables: list[ReportedTable]
    path: str  # where the cells came from: the published file's name, and any reported entries'
    cells: list[dict[str, Any]] = field(default_factory=list)  # as read, so more can be added

    def of_metric(self, metric: str) -> list[ReportedTable]:
        """The tables cut to ``metric``'s rows (none where no source reports it)."""
        cut = [
            ReportedTable(t.dataset, t.split, t.columns, [r for r in t.rows if r.metric == metric]) for t in self.tables
        ]
        return [t for t in cut if t.rows]


def _rank(evaluation: str) -> int:
    return 0 if evaluation == "natural" else 2 if evaluation.startswith("certified") else 1


def _eps(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def read_published(path: Path) -> Reported:
    """The published cells of ``path``, read and checked as ``compare`` reads them; a bad file is one line naming it."""
    data = read_published_data(Path(path))
    return build_reported(data["sources"], data["cells"], Path(path).name)


def with_reported(
    reported: Reported | None, sources: dict[str, dict[str, Any]], cells: list[dict[str, Any]], where: str
) -> Reported | None:
    """``reported`` with more sources and their cells (a reported entry's claims), in the same tables."""
    if not cells:
        return reported
    if reported is None:
        return build_reported(sources, cells, where)
    return build_reported({**reported.sources, **sources}, reported.cells + cells, f"{reported.path}, {where}")


def build_reported(sources: dict[str, dict[str, Any]], given: list[dict[str, Any]], path: str) -> Reported:
    """Tables of published cells (checked by calibration.read_published_data, or an entry's): one per dataset and split."""
    tables: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in given:
        split = str(cell.get("split") or "")
        part = tables.setdefault((cell["dataset"], split), {"columns": {}, "rows": {}})
        eps = _eps(cell.get("eps"))
        label = column_label(cell["evaluation"], cell.get("norm"), eps)
        part["columns"][label] = (_rank(cell["evaluation"]), cell["evaluation"], cell.get("norm") or "", eps or 0.0)
        protocol = cell.get("protocol") or {}
        text = "; ".join(f"{k}: {v}" for k, v in protocol.items())
        part["rows"].setdefault((cell["metric"], cell["source"]), {})[label] = ReportedCell(
            float(cell["score"]), cell.get("n"), text
        )
    out = []
    for (dataset, split), part in tables.items():
        columns = sorted(part["columns"], key=lambda label: part["columns"][label])
        table = ReportedTable(dataset, split, columns)
        for (metric, source), cells in part["rows"].items():
            texts = {cell.protocol for cell in cells.values()}
            shared = texts.pop() if len(texts) == 1 else ""
            if shared:
                cells = {label: ReportedCell(c.score, c.n, "") for label, c in cells.items()}
            table.rows.append(ReportedRow(metric, source, shared, [cells.get(label) for label in columns]))
        out.append(table)
    return Reported(sources, out, path, list(given))
