"""AutoAttack's other sanity check: a robust score that rises with more attack steps or restarts.

A stronger run of the same attack (same metric, data, threat model and every other setting; only ``steps``
and/or ``restarts`` larger) can only find more flips, up to its random draws. When its robust score is
higher than the weaker run's by more than those draws explain, the extra iterations made the attack worse:
a sign of gradient masking (non-finite or flat gradients, a loss that saturates), to be reported, not hidden.

"More than noise" is an exact one-sided sign test on the triplets the two runs disagree on (robust under
one, flipped under the other): p < 0.05 under "each such triplet is equally likely either way".

Two step counts of one attack meet where a run folder holds reruns with other ``--steps`` (or ``report A B``
merges folders): bench/report/variants.py keeps both, the other one as its own column (``apgd(steps=20)``).
One run never holds two, so the check reads the records a report shows together (``report.outputs``).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from scipy.stats import binomtest

from lipsim_bench.formatting import format_eps

#: Options whose larger values make the same attack stronger.
STRENGTH = ("steps", "restarts")
LEVEL = 0.05
CELL = ["metric", "dataset", "norm", "eps"]


def _identity(row: Any) -> tuple[str, dict[str, Any]] | None:
    """(everything but the strength options, as text; the strength options) of a score row, or None."""
    try:
        settings = json.loads(row.settings) if isinstance(row.settings, str) else {}
    except ValueError:
        return None
    options = settings.get("options") or {}
    if not any(key in options for key in STRENGTH):
        return None
    rest = {**settings, "options": {k: v for k, v in options.items() if k not in STRENGTH}}
    base = str(row.evaluation).split("(", 1)[0]
    text = json.dumps({"evaluation": base, "seed": row.seed, **rest}, sort_keys=True, default=str)
    return text, {key: options.get(key, 1) for key in STRENGTH}


def _stronger(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """``a`` has at least ``b``'s steps and restarts, and more of one."""
    try:
        pairs = [(float(a[k]), float(b[k])) for k in STRENGTH]
    except (TypeError, ValueError):
        return False
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def _agreement(triplets: pd.DataFrame, metric: str, dataset: str, evaluation: str, norm: Any, eps: float) -> pd.Series:
    rows = triplets[
        (triplets["metric"] == metric)
        & (triplets["dataset"] == dataset)
        & (triplets["evaluation"] == evaluation)
        & (triplets["norm"] == norm)
        & (pd.to_numeric(triplets["eps"], errors="coerce").round(12) == round(float(eps), 12))
    ]
    return rows.drop_duplicates("id").set_index("id")["agreement"].astype(float)


def stronger_attack_notes(scores: pd.DataFrame, triplets: pd.DataFrame) -> list[str]:
    """One WARNING line per pair of shown attack columns where more steps/restarts gave a higher robust score."""
    needed = {"kind", "settings", "seed", "evaluation", *CELL}
    if scores.empty or triplets.empty or not needed <= set(scores.columns):
        return []
    if not {"metric", "dataset", "evaluation", "norm", "eps", "id", "agreement"} <= set(triplets.columns):
        return []
    shown = scores[scores["kind"] == "attack"].drop_duplicates(["evaluation", *CELL])
    groups: dict[tuple, list[tuple[str, dict[str, Any]]]] = {}
    for row in shown.itertuples(index=False):
        found = _identity(row)
        if found is not None:
            key = (row.metric, row.dataset, row.norm, round(float(row.eps), 12), found[0])
            groups.setdefault(key, []).append((str(row.evaluation), found[1]))
    lines = []
    for (metric, dataset, norm, eps, _), members in groups.items():
        for strong, strong_options in members:
            for weak, weak_options in members:
                if not _stronger(strong_options, weak_options):
                    continue
                line = _compare(triplets, metric, dataset, norm, eps, weak, strong)
                if line:
                    lines.append(line)
    return lines


def _compare(
    triplets: pd.DataFrame, metric: str, dataset: str, norm: Any, eps: float, weak: str, strong: str
) -> str | None:
    """The warning when ``strong``'s robust agreement beats ``weak``'s beyond the sign test's noise."""
    a = _agreement(triplets, metric, dataset, weak, norm, eps)
    b = _agreement(triplets, metric, dataset, strong, norm, eps)
    shared = a.index.intersection(b.index)
    if not len(shared):
        return None
    a, b = a.loc[shared], b.loc[shared]
    up, down = int((b > a + 1e-12).sum()), int((a > b + 1e-12).sum())
    if up <= down:
        return None
    p = float(binomtest(up, up + down, 0.5, alternative="greater").pvalue)
    if p >= LEVEL:
        return None
    threat = f" {norm} {format_eps(eps)}" if isinstance(norm, str) else f" {format_eps(eps)}"
    return (
        f"WARNING: {metric}{threat}: the robust score rises with more steps or restarts ({weak} {100 * a.mean():.2f} -> "
        f"{strong} {100 * b.mean():.2f} on {len(shared)} shared triplets; {up} agree more under the stronger attack, "
        f"{down} under the weaker; sign test p = {p:.2g}): a sign of gradient masking (see grad_masked in triplets.csv)"
    )
