"""The examples figure (examples.png / .pdf): a row per triplet, the clean triplet once, then per metric the
adversarial input and its perturbation, amplified for visibility with the amplification and its norms printed.

Drawn from :func:`lipsim_bench.report.examples.collect_examples`; nothing here reads files.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from lipsim_bench.errors import BenchError
from lipsim_bench.formatting import format_eps
from lipsim_bench.report.examples import ExampleOptions, Examples, Panel, Shown, collect_examples
from lipsim_bench.report.figure_style import STYLE, norm_label

FLIPPED, KEPT, QUIET = "#c62828", "#2e7d32", "0.35"
PANEL_IN = 0.9  # one image's width and height
TEXT_IN = 0.7  # the lines under a row of panels
WORDS = {"ref": "the reference", "x0": "x0", "x1": "x1", "all": "the triplet (ref | x0 | x1)"}


def amplification(delta: Tensor) -> float:
    """The largest of 1, 2, 5 x 10^k that keeps the perturbation within +-0.5 around mid-grey."""
    peak = float(delta.abs().max())
    if peak <= 0:
        return 1.0
    limit = 0.5 / peak
    exponent = math.floor(math.log10(limit))
    return max(m * 10.0**exponent for m in (1, 2, 5) if m * 10.0**exponent <= limit)


def format_amplification(factor: float) -> str:
    return f"δ × {factor:g}"


def norm_text(l2: float, linf: float) -> str:
    """The printed norms of a perturbation (tests read them back)."""
    return rf"$\|\delta\|_2$ = {l2:.3f}" + "\n" + rf"$\|\delta\|_\infty$ = {linf:.3f}"


def to_rgb(image: Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1], or a stacked triplet (3C, H, W) side by side with a white gap, as (H, W, C)."""
    channels = 3 if image.shape[0] % 3 == 0 and image.shape[0] > 3 else image.shape[0]
    parts = [p.clamp(0, 1).permute(1, 2, 0).numpy() for p in image.split(channels)]
    if len(parts) == 1:
        return parts[0]
    gap = np.ones((parts[0].shape[0], max(1, parts[0].shape[1] // 16), channels), dtype=parts[0].dtype)
    return np.concatenate([x for part in parts for x in (part, gap)][:-1], axis=1)


def choice(d0: float, d1: float) -> str:
    return "x0" if d0 < d1 else "x1" if d1 < d0 else "tie"


def distance_lines(panel: Panel) -> str:
    """d0 and d1 before and after, and which image the metric picks (the flip, if any)."""
    d0, d1 = panel.after
    if panel.before is None:
        return f"d0 {d0:.3g}\nd1 {d1:.3g}\npicks {choice(d0, d1)}"
    b0, b1 = panel.before
    if panel.state in ("proven", "wrong", "absent"):
        return f"d0 {b0:.3g}\nd1 {b1:.3g}\npicks {choice(b0, b1)}"
    verdict = "flipped" if panel.flipped else "kept"
    return f"d0 {b0:.3g} → {d0:.3g}\nd1 {b1:.3g} → {d1:.3g}\n{choice(b0, b1)} → {choice(d0, d1)}: {verdict}"


def perturbation_lines(panel: Panel) -> str:
    """The amplification and the perturbation's l2 and l-inf norms (of the stored input minus the clean one)."""
    assert panel.delta is not None
    if panel.linf == 0:
        return norm_text(panel.l2, panel.linf)
    carried = f"\nflipped at ε = {format_eps(panel.from_eps)}" if panel.from_eps is not None else ""
    return f"{format_amplification(amplification(panel.delta))}\n{norm_text(panel.l2, panel.linf)}{carried}"


NO_FLIP = "attacked, no flip\nfound: the attack\nreturns the clean\ninput"
NOT_SHOWN = {
    "proven": "proven robust\n(certified radius ≥ ε):\nnot attacked",
    "wrong": "wrong before\nthe attack:\nnot attacked",
    "absent": "no stored\nexample",
}


def image_axes(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def draw_panel(adv: Axes, pert: Axes, panel: Panel, clean: Tensor) -> None:
    """The metric's adversarial input and amplified perturbation (or why there is none), with its numbers."""
    colour = FLIPPED if panel.flipped else KEPT if panel.state in ("attacked", "carried") else QUIET
    adv.imshow(to_rgb(panel.x_adv if panel.x_adv is not None else clean), interpolation="nearest")
    adv.set_xlabel(distance_lines(panel), color=colour, fontsize=6.5, linespacing=1.25)
    for spine in adv.spines.values():
        spine.set(visible=True, color=colour, linewidth=2.0 if panel.state in ("attacked", "carried") else 0.6)
    if panel.delta is None:  # a blank image of the same size keeps the row's titles and labels aligned
        pert.imshow(np.ones_like(to_rgb(clean)), interpolation="nearest")
        pert.text(
            0.5, 0.5, NOT_SHOWN.get(panel.state, ""), ha="center", va="center", fontsize=6.5, color=QUIET,
            transform=pert.transAxes,
        )  # fmt: skip
        for spine in pert.spines.values():
            spine.set_visible(False)
        return
    factor = amplification(panel.delta)
    shown = (0.5 + factor * panel.delta).clamp(0, 1) if panel.linf > 0 else torch.ones_like(panel.delta)
    pert.imshow(to_rgb(shown), interpolation="nearest")
    pert.set_xlabel(perturbation_lines(panel), fontsize=6.5, linespacing=1.25)
    if panel.linf == 0:  # an attack that found no flip returns the clean input: say so rather than show grey
        pert.text(0.5, 0.5, NO_FLIP, ha="center", va="center", fontsize=6.5, color=QUIET, transform=pert.transAxes)
    for spine in pert.spines.values():
        spine.set(visible=True, color="0.6", linewidth=0.6)


def draw_row(axes: list[Axes], shown: Shown, examples: Examples, first: bool) -> None:
    """One triplet: ref, x0, x1, then each metric's two panels."""
    human = "x0" if shown.p < 0.5 else "x1"
    for ax, key in zip(axes[:3], ("ref", "x0", "x1")):
        ax.imshow(to_rgb(shown.images[key]), interpolation="nearest")
        image_axes(ax)
        for spine in ax.spines.values():
            spine.set(visible=True, color="0.6", linewidth=0.6)
        if first:
            ax.set_title("reference" if key == "ref" else key, fontsize=7.5)
    axes[0].set_ylabel(f"triplet {shown.id}\nhumans: {human}\n(p = {shown.p:.2f})", fontsize=7, labelpad=4)
    target = examples.perturb
    for i, panel in enumerate(shown.panels):
        adv, pert = axes[3 + 2 * i], axes[4 + 2 * i]
        image_axes(adv)
        image_axes(pert)
        clean = shown.images[target] if target != "all" else _stacked(shown)
        draw_panel(adv, pert, panel, clean)
        if first:
            adv.set_title(f"{panel.metric}\nadversarial", fontsize=7.5)
            pert.set_title("\nperturbation", fontsize=7.5)


def _stacked(shown: Shown) -> Tensor:
    return torch.cat([shown.images[k] for k in ("ref", "x0", "x1")])


def examples_figure(examples: Examples) -> Figure:
    """The grid: a row per shown triplet, columns ref, x0, x1, then (adversarial, perturbation) per metric."""
    wide = 3.0 if examples.perturb == "all" else 1.0
    ratios = [1.0, 1.0, 1.0] + [wide, wide] * len(examples.metrics)
    rows = len(examples.shown)
    width = PANEL_IN * sum(ratios) + 0.8
    height = (PANEL_IN + TEXT_IN) * rows + 0.75
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        grid = fig.subplots(rows, len(ratios), squeeze=False, gridspec_kw={"width_ratios": ratios})
        for r, shown in enumerate(examples.shown):
            draw_row(list(grid[r]), shown, examples, r == 0)
        fig.get_layout_engine().set(w_pad=0.02, h_pad=0.06, wspace=0.04, hspace=0.04)
        fig.suptitle(title(examples), fontsize=8.5)
    return fig


def title(examples: Examples) -> str:
    """Attack, threat model, perturbed input, data and n; how the triplets were picked; how to read the colours."""
    eps = f"{norm_label(examples.norm)} ε = {format_eps(examples.eps)}"
    picked = (
        f"{examples.mixed} of the {examples.n} triplets are flipped for some metrics but not others: "
        f"{len(examples.shown)} shown, those first"
        if examples.mixed
        else f"no triplet is flipped for some metrics but not others; {len(examples.shown)} shown"
    )
    return (
        f"Adversarial examples: {examples.attack}, {eps}, perturbing {WORDS[examples.perturb]}; "
        f"{examples.dataset} / {examples.split}, n = {examples.n} triplets\n{picked}\n"
        "red: the metric's choice flipped, green: kept; perturbations drawn as 0.5 + amplification × δ"
    )


def run_examples_figure(run_dir: Path, options: ExampleOptions, notes: list[str] | None) -> Figure | None:
    """plot_run's examples figure: None without attack units (or records/); without stored examples, or when
    they cannot be drawn, one line in ``notes`` (the other figures are drawn all the same; without ``notes``
    the second case raises)."""
    try:
        shown = collect_examples(run_dir, options) if (run_dir / "records").is_dir() else None
    except BenchError as exc:
        if notes is None:
            raise
        shown = f"examples.png not drawn: {exc}"
    if isinstance(shown, str):
        if notes is not None:
            notes.append(shown)
        return None
    return examples_figure(shown) if shown is not None else None
