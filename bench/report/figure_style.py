"""The house style of every figure: sizes for one- and two-column papers, fonts, markers, panel grids,
legends and deterministic saving (PNG and PDF). Shared by :mod:`lipsim_bench.report.plots`."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lipsim_bench.formatting import format_eps

ONE_COLUMN_IN = 3.3
TWO_COLUMNS_IN = 6.8
PNG_DPI = 200
MAX_PANELS_PER_ROW = 3
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "figure.titlesize": 9,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # embed TrueType: text stays editable and searchable in the PDF
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
LINE_STYLES = ("-", "--", ":", "-.")  # one per certificate evaluation in the certified figure


def norm_label(norm: str) -> str:
    """mathtext for a norm name: l2 -> l_2, linf -> l_inf."""
    return {"l2": r"$\ell_2$", "linf": r"$\ell_\infty$"}.get(norm, norm)


def eps_axis_label(norm: str) -> str:
    return rf"$\epsilon$ ({norm_label(norm)}, images in [0, 1])"


def eps_tick_labels(ticks: list[float], axis_width_in: float) -> list[str]:
    """format_eps labels, blanking those that would overlap a neighbour (the tick and point stay).

    Attack radii are often geometric (0.25, 0.5, 1, 2): near 0 the labels collide on a linear axis.
    The last label is always kept, so the axis shows its range.
    """
    labels = ["0" if t == 0 else format_eps(t) for t in ticks]
    span = (ticks[-1] - ticks[0]) or 1.0
    char_in = 0.55 * STYLE["xtick.labelsize"] / 72  # average glyph width of the tick font

    def clash(i: int, j: int) -> bool:
        room = abs(ticks[j] - ticks[i]) / span * axis_width_in
        return room < (len(labels[i]) + len(labels[j]) + 2) / 2 * char_in

    kept = [0]
    for i in range(1, len(ticks)):
        if not clash(kept[-1], i):
            kept.append(i)
    last = len(ticks) - 1
    if kept[-1] != last:
        kept = [k for k in kept if not clash(k, last)] + [last]
    return [label if i in kept else "" for i, label in enumerate(labels)]


def panel_grid(count: int, height_in: float) -> tuple[Figure, list[Axes]]:
    """One column wide for a single panel, two columns wide (up to 3 per row, rows balanced: 4 panels as 2 x 2,
    never 3 + 1) for more."""
    rows = -(-count // MAX_PANELS_PER_ROW)
    cols = -(-count // rows)
    width = ONE_COLUMN_IN if count == 1 else TWO_COLUMNS_IN
    fig = Figure(figsize=(width, height_in * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def metric_styles(metrics: list[str]) -> dict[str, dict[str, object]]:
    """A fixed colour and marker per metric, so a metric looks the same in every figure."""
    colours = [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab10"].colors]
    return {m: {"color": colours[i % len(colours)], "marker": MARKERS[i % len(MARKERS)]} for i, m in enumerate(metrics)}


def shared_legend(fig: Figure, axes: list[Axes]) -> None:
    """One legend under the panels, outside them (never over data), as many columns as fit the width."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if not entries:
        return
    char_in = 0.55 * STYLE["legend.fontsize"] / 72
    entry_in = max(len(label) for label in entries) * char_in + 0.55  # text, handle and spacing
    columns = max(1, min(len(entries), int(fig.get_figwidth() // entry_in)))
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=columns, frameon=False)


def save_figure(fig: Figure, stem: Path, formats: tuple[str, ...]) -> list[Path]:
    """Write every format (PNG at PNG_DPI; PDF without a date, so reruns give the same file)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        fig.savefig(path, dpi=PNG_DPI, metadata=metadata)
        paths.append(path)
    return paths
