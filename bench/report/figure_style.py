"""The house style of every figure: sizes for one- and two-column papers, fonts, markers, panel grids,
legends and deterministic saving (PNG and PDF). Shared by :mod:`lipsim_bench.report.plots`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lipsim_bench.formatting import format_eps
from lipsim_bench.report.palette import metric_style, metric_styles  # noqa: F401  (a metric's look is the palette's)

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
LINE_STYLES = ("-", ":")  # two certificates sharing a panel; dashed is kept for marked cells
TITLE_IN = 0.45  # the suptitle's two lines
LEGEND_ROW_IN = 0.17
LEGEND_NAME_CHARS = 24  # a metric's name fits; longer entries are wrapped
BAND_ALPHA = 0.18


def norm_label(norm: str) -> str:
    """mathtext for a norm name: l2 -> l_2, linf -> l_inf."""
    return {"l2": r"$\ell_2$", "linf": r"$\ell_\infty$"}.get(norm, norm)


def eps_axis_label(norm: str) -> str:
    return rf"$\epsilon$ ({norm_label(norm)}, images in [0, 1])"


def eps_tick_labels(
    ticks: list[float], axis_width_in: float, span: float | None = None, first: tuple[float, ...] = ()
) -> list[str]:
    """format_eps labels, blanking those that would overlap a neighbour (the tick and point stay).

    Attack radii are often geometric (0.25, 0.5, 1, 2): near 0 the labels collide on a linear axis.
    ``span``: the axis' data range (default: the ticks'). Labelled first: 0, the last tick (the axis shows its
    range), then ``first`` (the certified figure's own radii), then the others left to right.
    """
    labels = ["0" if t == 0 else format_eps(t) for t in ticks]
    span = span or (ticks[-1] - ticks[0]) or 1.0
    char_in = 0.55 * STYLE["xtick.labelsize"] / 72  # average glyph width of the tick font

    def clash(i: int, j: int) -> bool:
        room = abs(ticks[j] - ticks[i]) / span * axis_width_in
        return room < (len(labels[i]) + len(labels[j]) + 2) / 2 * char_in

    last = len(ticks) - 1
    wanted = {round(float(f), 12) for f in first}
    order = [0, last] + [i for i in range(1, last) if round(ticks[i], 12) in wanted]
    order += [i for i in range(1, last) if i not in order]
    kept: list[int] = []
    for i in dict.fromkeys(order):
        if not any(clash(k, i) for k in kept):
            kept.append(i)
    return [label if i in kept else "" for i, label in enumerate(labels)]


def panel_grid(count: int, height_in: float) -> tuple[Figure, list[Axes]]:
    """One column wide for a single panel, two columns wide (up to 3 per row, rows balanced: 4 panels as 2 x 2,
    never 3 + 1) for more. ``height_in`` is a row of panels; titles and the legend get room of their own
    (:func:`shared_legend` grows the figure by the legend's rows), so panels keep their size."""
    rows = -(-count // MAX_PANELS_PER_ROW)
    cols = -(-count // rows)
    width = ONE_COLUMN_IN if count == 1 else TWO_COLUMNS_IN
    fig = Figure(figsize=(width, height_in * rows + TITLE_IN), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def shared_legend(fig: Figure, axes: list[Axes], extra: list[tuple[object, str]] = ()) -> None:
    """One legend under the panels, outside them (never over data), as many columns as fit the width; the
    figure grows by its rows, so panels keep their size. ``extra``: (handle, words) entries no panel draws
    (what shading or a dashed line means), after the metrics."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_"):
                entries.setdefault(label, handle)
    for handle, label in extra:
        entries.setdefault(label, handle)
    if not entries:
        return
    char_in = 0.6 * STYLE["legend.fontsize"] / 72  # a generous average glyph width: never wider than guessed
    width = fig.get_figwidth() - 0.1
    # columns as the metrics' names need; a longer sentence is wrapped to a column's width (or two lines' worth)
    names = [label for label in entries if len(label) <= LEGEND_NAME_CHARS] or [LEGEND_NAME_CHARS * "x"]
    entry_in = max(len(label) for label in names) * char_in + 0.6  # text, handle and spacing
    columns = max(1, min(len(entries), int(width // entry_in)))
    chars = max(LEGEND_NAME_CHARS, int((width / columns - 0.6) / char_in))
    labels = [textwrap.fill(label, chars) if "$" not in label else label for label in entries]
    lines = sum(label.count("\n") + 1 for label in labels)
    rows = max(-(-len(labels) // columns), -(-lines // columns) + 1)
    fig.set_figheight(fig.get_figheight() + rows * LEGEND_ROW_IN)
    fig.legend(list(entries.values()), labels, loc="outside lower center", ncol=columns, frameon=False)


def band_handle(colour: str = "0.5") -> Patch:
    """The legend's swatch for a shaded interval."""
    return Patch(facecolor=colour, alpha=BAND_ALPHA, edgecolor="none")


def marked_handle() -> Line2D:
    """The legend's sample of a marked line: dashed, hollow markers."""
    return Line2D([], [], color="0.3", ls="--", marker="o", markerfacecolor="white")


def scored_line(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    marked: np.ndarray,
    style: dict[str, object],
    label: str,
) -> bool:
    """A metric's scores as a line: its 95% interval shaded where known, segments into a marked cell dashed and
    marked points hollow; returns whether a band was drawn. The legend gets the metric's plain entry."""
    colour, marker = style["color"], style["marker"]
    known = np.isfinite(low) & np.isfinite(high)
    if known.any():
        ax.fill_between(
            x,
            np.where(known, low, y),
            np.where(known, high, y),
            where=known,
            color=colour,
            alpha=BAND_ALPHA,
            lw=0,
            interpolate=False,
        )
    for i in range(len(x) - 1):
        dashed = bool(marked[i] or marked[i + 1])
        ax.plot(x[i : i + 2], y[i : i + 2], color=colour, ls="--" if dashed else "-", lw=1.0 if dashed else 1.2)
    ax.plot(x[~marked], y[~marked], ls="none", marker=marker, color=colour, zorder=3)
    if marked.any():
        ax.plot(x[marked], y[marked], ls="none", marker=marker, color=colour, markerfacecolor="white", zorder=3)
    ax.plot([], [], color=colour, marker=marker, label=label)
    return bool(known.any())


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
