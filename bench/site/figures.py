"""A metric's curves on its page: score against radius, a line per attack and certificate of one protocol.

Drawn here rather than with bench/report/plots.py, whose figures compare metrics (a line per metric); a
metric's page compares its evaluations. Every line is in the metric's own colour and marker
(bench/report/palette.py), the one ``plot`` gives it in every figure; evaluations differ by line style (the worst
case solid and heavy, certificates with hollow markers). Small PNGs (90 dpi, 64 colours, no timestamp) keep the
committed site light and byte-stable.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image

from lipsim_bench.formatting import format_eps
from lipsim_bench.report.palette import metric_style
from lipsim_bench.site.model import Cell, Protocol

DPI = 90
#: The column groups drawn as lines (a certificate's markers hollow); the worst case is drawn heaviest.
STYLES = {"robust": {}, "certified": {"mfc": "white"}}
#: Dash patterns of the lines after the first (solid) one, in column order: told apart in one colour.
DASHES = ("-", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)), (0, (3, 1, 1, 1, 1, 1)), (0, (9, 2)), (0, (2, 3)))


def _series(protocol: Protocol, metric: str) -> dict[tuple[str, str], list[tuple[float, Cell]]]:
    """(evaluation, norm) -> [(eps, cell)] for the metric's attack and certificate columns, by eps."""
    lines: dict[tuple[str, str], list[tuple[float, Cell]]] = {}
    for column in protocol.columns:
        cell = protocol.cells.get((metric, column.label))
        if cell is None or column.eps is None or column.group not in STYLES:
            continue
        lines.setdefault((column.evaluation, column.norm or ""), []).append((column.eps, cell))
    return {key: sorted(points, key=lambda p: p[0]) for key, points in lines.items()}


def _tick_labels(ticks: list[float], log: bool) -> list[str]:
    """Radii as the tables print them; a label too close to the one before is left blank."""
    span = (ticks[-1] - ticks[0]) if ticks else 0.0
    labels: list[str] = []
    last = None
    for tick in ticks:
        close = last is not None and (tick / last < 1.35 if log else tick - last < 0.07 * span)
        labels.append("" if close else format_eps(tick))
        last = last if close else tick
    return labels


def metric_figure(protocol: Protocol, metric: str, path: Path) -> bool:
    """Write the metric's curves for ``protocol`` to ``path`` (PNG); False when it has no radius to draw."""
    lines = _series(protocol, metric)
    if not lines:
        return False
    natural = next(
        (protocol.cells.get((metric, c.label)) for c in protocol.columns if c.group == "natural"),
        None,
    )
    norms = list(dict.fromkeys(norm for _, norm in lines))
    fig = Figure(figsize=(5.6 * len(norms), 2.7), layout="constrained")
    axes = fig.subplots(1, len(norms), squeeze=False)[0]
    groups = {c.evaluation: c.group for c in protocol.columns}
    banded = {key for key in lines if key[0] == "worst-case"} or set(lines)  # bands on the worst case where it is
    own_style = metric_style(metric)
    colour = str(own_style["color"])
    evaluations = list(dict.fromkeys(e for e, _ in lines))
    dashes = {
        e: DASHES[i % len(DASHES)]
        for i, e in enumerate(sorted(evaluations, key=lambda e: e != "worst-case"))  # the worst case solid
    }
    for ax, norm in zip(axes, norms):
        for (evaluation, own), points in lines.items():
            if own != norm:
                continue
            eps = [p[0] for p in points]
            style = {
                **STYLES[groups[evaluation]],
                "color": colour,
                "marker": own_style["marker"],
                "ls": dashes[evaluation],
                "ms": 3.5,
                "lw": 1.1,
            }
            if evaluation == "worst-case":
                style.update(lw=2.4, ms=4.5, zorder=3)
            elif groups[evaluation] == "certified" and (evaluation, own) not in banded:
                banded.add((evaluation, own))  # a certificate is no attack: its band is always drawn
            (drawn,) = ax.plot(eps, [p[1].score for p in points], label=evaluation, **style)
            low, high = [p[1].ci_low for p in points], [p[1].ci_high for p in points]
            if (evaluation, own) in banded and all(v is not None for v in low + high):
                ax.fill_between(eps, low, high, color=drawn.get_color(), alpha=0.15, lw=0)
        if natural is not None:
            ax.axhline(natural.score, color="gray", ls=":", lw=1, label="natural")
        ticks = sorted({e for (_, own), points in lines.items() if own == norm for e, _ in points})
        log = bool(ticks) and ticks[0] > 0 and ticks[-1] / ticks[0] > 4  # 4/255 to 2: log keeps small radii apart
        if log:
            ax.set_xscale("log")
        ax.set_xticks(ticks, _tick_labels(ticks, log), fontsize=7)
        ax.minorticks_off()
        ax.set(ylim=(0, 100), xlabel=f"radius ({norm})" if norm else "radius", ylabel="2AFC score (%)")
        ax.grid(alpha=0.3)
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside right center", frameon=False)
    fig.suptitle(f"{metric} on {protocol.title}", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    buffer.seek(0)
    with Image.open(buffer) as image:  # 64 colours: a third of the bytes, no visible change on flat plots
        small = image.convert("RGB").quantize(colors=64)
    path.parent.mkdir(parents=True, exist_ok=True)
    small.save(path, format="PNG", optimize=True)
    return True
