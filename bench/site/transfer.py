"""A protocol's transfer matrix on the site: how each metric scores the adversarial examples an attack crafted on
each metric of the run (the ``transfer`` evaluation), one square table per radius.

Built from the transfer records' per-(source, triplet) rows as bench/report/transfer.py builds ``transfer.csv``
(same cells, same order), so the site and the run folder's ``transfer.md`` agree; the rows come through the same
record checks as every score of the site, never from a CSV beside the records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lipsim_bench.evaluations.transfer import TRANSFER_TRIPLETS
from lipsim_bench.report.collect import Collected
from lipsim_bench.report.transfer import matrix_order, transfer_matrix


@dataclass
class TransferPanel:
    """One radius: rows = the metric the attack crafted its examples on, columns = the metric scoring them."""

    attack: str
    norm: str
    eps: float
    sources: list[str]
    metrics: list[str]
    cells: dict[tuple[str, str], tuple[float, int]]  # (source, scored by) -> (score %, triplets)

    def cell(self, source: str, metric: str) -> tuple[float, int] | None:
        return self.cells.get((source, metric))


def transfer_panels(collected: Collected) -> list[TransferPanel]:
    """The panels of a protocol's transfer rows (none when no transfer unit ran)."""
    rows = collected.diagnostics.get(TRANSFER_TRIPLETS)
    if rows is None or rows.empty:
        return []
    matrix = transfer_matrix(rows)
    order = matrix_order(matrix)
    panels = []
    for (attack, norm, eps), part in matrix.groupby(["attack", "norm", "eps"], sort=False):
        sources = [m for m in order if m in set(part["source"])]
        metrics = [m for m in order if m in set(part["metric"])]
        cells = {
            (str(r.source), str(r.metric)): (float(r.score), int(r.n))
            for r in part.itertuples()
            if not (isinstance(r.score, float) and math.isnan(r.score))
        }
        panels.append(TransferPanel(str(attack), str(norm), float(eps), sources, metrics, cells))
    return panels


def shade(score: float) -> str:
    """A cell's background: the lower the score (the more often fooled), the deeper the orange."""
    alpha = max(0.0, min(1.0, (100.0 - score) / 100.0)) * 0.55
    return f"rgba(213, 94, 0, {alpha:.2f})"


__all__ = ["TransferPanel", "shade", "transfer_panels"]
