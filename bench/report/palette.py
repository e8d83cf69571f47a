"""One colour and marker per metric, the same in every figure and every run.

Chosen by the metric's name, never by its position in a table: every registered metric has a fixed entry
(pairwise distinct), any other name a stable hash (sha256, not Python's salted ``hash``) into colours no
registered metric uses, so a plugin's metric keeps its look from run to run. Greys are kept for chance
lines, y = x and the like.
"""

from __future__ import annotations

import hashlib

#: The registered metrics' colours and markers: a colour per family (LipSim, DreamSim, R-CLIP, ...), a marker
#: per member, so no two registered metrics look alike.
KNOWN = {
    "pixel-l2": ("#0072b2", "s"),
    "lipsim": ("#d55e00", "o"),
    "lipsim-margin0.2": ("#d55e00", "s"),
    "lipsim-margin0.5": ("#d55e00", "^"),
    "lipsim-pretrained": ("#d55e00", "D"),
    "lipsim-tiny": ("#e69f00", "o"),
    "lipsim-tiny-stlpips": ("#8c510a", "s"),  # its own colour: it sits beside lipsim-tiny in the default run
    "convsim-tiny": ("#009e73", "^"),
    "convsim-tiny-noise": ("#009e73", "v"),
    "dreamsim": ("#cc79a7", "D"),
    "dreamsim-clip": ("#cc79a7", "v"),
    "dreamsim-dino": ("#cc79a7", "X"),
    "dreamsim-open-clip": ("#cc79a7", "P"),
    "clip": ("#56b4e9", "v"),
    "open-clip": ("#9467bd", "P"),
    "dino": ("#8c564b", "X"),
    "lpips": ("#bcbd22", "<"),
    "stlpips-alex": ("#17becf", ">"),
    "stlpips-vgg": ("#17becf", "<"),
    "rclip": ("#d62728", "*"),
    "rclip-fare-convnext": ("#d62728", "o"),
    "rclip-fare-vitb16": ("#d62728", "s"),
    "rclip-fare-vitb32": ("#d62728", "^"),
    "rclip-tecoa-convnext": ("#d62728", "D"),
    "rclip-tecoa-vitb16": ("#d62728", "v"),
    "rclip-tecoa-vitb32": ("#d62728", "P"),
}
#: Colours no registered metric has, for any other name (a plugin's): it can never look like a registered one.
PALETTE = ("#1f3a93", "#6a3d9a", "#b15928", "#33a02c", "#e7298a", "#666600", "#a6761d", "#008080")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p")


def _digest(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


def metric_style(name: str) -> dict[str, object]:
    """``{"color", "marker"}`` of one metric: its fixed entry, else a stable hash of its name."""
    if name in KNOWN:
        colour, marker = KNOWN[name]
    else:
        h = _digest(name)
        colour, marker = PALETTE[h % len(PALETTE)], MARKERS[(h // len(PALETTE)) % len(MARKERS)]
    return {"color": colour, "marker": marker}


def metric_styles(metrics: list[str]) -> dict[str, dict[str, object]]:
    """Styles of the given metrics (their order plays no part)."""
    return {m: metric_style(m) for m in metrics}
