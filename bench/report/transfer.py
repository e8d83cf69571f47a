"""The transfer matrix: rows = the metric an attack crafted its examples on, columns = the metric scoring them.

Built from the ``transfer`` evaluation's per-(source, triplet) rows (``transfer_triplets.csv``) alone, so a run
folder's files suffice: ``transfer.csv`` (one row per cell: attack, norm, eps, source, metric, score, n),
``transfer.md`` (one table per radius) and ``transfer.png``/``.pdf`` (one heatmap panel per radius). A cell is
100 x the mean agreement of its triplets (the size-weighted mean over a split's groups is that same mean); the
diagonal is the source's own robust score under the attack.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from lipsim_bench.evaluations.transfer import TRANSFER_TRIPLETS
from lipsim_bench.formatting import format_eps
from lipsim_bench.io import atomic_write_text
from lipsim_bench.report.figure_style import STYLE, metric_styles, norm_label, panel_grid, save_figure

#: The matrix's files in a run folder (beside the rows' ``transfer_triplets.csv``).
TRANSFER_CSV = "transfer.csv"
TRANSFER_MD = "transfer.md"
MATRIX_COLUMNS = ["attack", "norm", "eps", "source", "metric", "score", "n"]
PANEL = ["attack", "norm", "eps"]

__all__ = ["TRANSFER_CSV", "TRANSFER_TRIPLETS", "transfer_figure", "transfer_markdown", "transfer_matrix"]


def matrix_order(matrix: pd.DataFrame) -> list[str]:
    """Metrics in run order (the scoring metrics' order, then any source not scored), as every figure orders them."""
    return list(dict.fromkeys([*matrix["metric"], *matrix["source"]]))


def transfer_matrix(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (attack, norm, eps, source, scoring metric): the score in percent and the triplets behind it."""
    if rows.empty:
        return pd.DataFrame(columns=MATRIX_COLUMNS)
    keys = [*PANEL, "source", "metric"]
    cells = rows.groupby(keys, sort=False, dropna=False)["agreement"].agg(["mean", "size"]).reset_index()
    matrix = cells.assign(score=100.0 * cells["mean"], n=cells["size"].astype(int))[MATRIX_COLUMNS]
    order = {m: i for i, m in enumerate(matrix_order(matrix))}
    return matrix.sort_values(
        ["attack", "norm", "eps", "source", "metric"],
        key=lambda c: c.map(order) if c.name in ("source", "metric") else c,
        kind="stable",
    ).reset_index(drop=True)


def _panels(matrix: pd.DataFrame) -> list[tuple[str, str, float, pd.DataFrame]]:
    """Per radius, the square table (rows: source, columns: scoring metric) in run order."""
    order = matrix_order(matrix)
    panels = []
    for (attack, norm, eps), part in matrix.groupby(PANEL, sort=False):
        table = part.pivot(index="source", columns="metric", values="score")
        table = table.reindex(
            index=[m for m in order if m in table.index], columns=[m for m in order if m in table.columns]
        )
        panels.append((str(attack), str(norm), float(eps), table))
    return panels


def transfer_markdown(matrix: pd.DataFrame) -> str:
    """One table per radius: rows crafted on, columns scored by; the diagonal (the source's own score) in bold."""
    if matrix.empty:
        return ""
    sizes = ", ".join(str(n) for n in sorted(set(matrix["n"].astype(int))))
    parts = [
        f"Transfer: 2AFC score (%) of the column's metric on the adversarial examples the attack crafted on the row's "
        f"metric (n = {sizes} triplets; a triplet the attack did not perturb is scored clean). The diagonal, in "
        "bold, is the row metric's own robust score."
    ]
    for attack, norm, eps, table in _panels(matrix):
        lines = [
            f"### {attack} {norm} eps {format_eps(eps)}",
            "",
            "| crafted on \\ scored by | " + " | ".join(table.columns) + " |",
            "|---" * (len(table.columns) + 1) + "|",
        ]
        for source, values in table.iterrows():
            cells = [
                "" if np.isnan(v) else (f"**{v:.1f}**" if metric == source else f"{v:.1f}")
                for metric, v in values.items()
            ]
            lines.append(f"| {source} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def transfer_figure(matrix: pd.DataFrame) -> Figure | None:
    """A heatmap per radius (rows: crafted on, columns: scored by; the diagonal outlined), tick labels in each metric's figure colour."""
    if matrix.empty:
        return None
    panels = _panels(matrix)
    styles = metric_styles(matrix_order(matrix))
    size = max(max(len(t.index), len(t.columns)) for *_, t in panels)
    with matplotlib.rc_context(STYLE):
        fig, axes = panel_grid(len(panels), 1.2 + 0.35 * size)
        image = None
        for ax, (attack, norm, eps, table) in zip(axes, panels):
            values = table.to_numpy(dtype=float)
            image = ax.imshow(values, vmin=0, vmax=100, cmap="viridis", aspect="equal")
            for (i, j), v in np.ndenumerate(values):
                if not np.isnan(v):
                    ax.text(
                        j, i, f"{v:.0f}", ha="center", va="center", fontsize=6, color="white" if v < 60 else "black"
                    )
            for i, source in enumerate(table.index):
                if source in table.columns:  # the diagonal: the source's own robust score
                    j = list(table.columns).index(source)
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.2))
            ax.set_xticks(range(len(table.columns)), table.columns, rotation=45, ha="right")
            ax.set_yticks(range(len(table.index)), table.index)
            for label in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
                label.set_color(str(styles.get(label.get_text(), {}).get("color", "black")))
            ax.set_title(f"{attack} {norm_label(norm)} $\\epsilon$ = {format_eps(eps)}")
            ax.set_xlabel("scored by")
            ax.set_ylabel("crafted on")
        if image is not None:
            fig.colorbar(image, ax=axes, label="2AFC score (%)", shrink=0.6)
    return fig


def write_transfer(out_dir: Path, rows: pd.DataFrame) -> list[str]:
    """transfer.csv, transfer.md and the heatmap (PNG, PDF) from the rows; the names of the files written."""
    matrix = transfer_matrix(rows)
    if matrix.empty:
        return []
    atomic_write_text(out_dir / TRANSFER_CSV, matrix.to_csv(index=False))
    atomic_write_text(out_dir / TRANSFER_MD, transfer_markdown(matrix) + "\n")
    written = [TRANSFER_CSV, TRANSFER_MD]
    figure = transfer_figure(matrix)
    if figure is not None:
        save_figure(figure, out_dir / Path(TRANSFER_CSV).stem, ("png", "pdf"))
        written += ["transfer.png", "transfer.pdf"]
    return written
