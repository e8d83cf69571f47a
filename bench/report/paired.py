"""``report --compare A,B``: metric A minus metric B on the same triplets, cell by cell, with an interval and a test.

Two scores on the same triplets are not independent: their intervals overlap far more often than the
scores differ by chance. The paired difference is the mean over common triplets (matched on group and
id) of A's agreement minus B's; its 95% interval is a seeded BCa bootstrap of those differences, each
group resampled on its own (bench/report/intervals.py), and its test is exact: McNemar's on the
discordant triplets where both agreements are 0 or 1, else a sign test on the per-triplet differences.
Both are statsmodels'; p-values are per cell and also Holm-adjusted over the table's cells.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lipsim_bench.errors import BenchError
from lipsim_bench.io import atomic_write_text
from lipsim_bench.report.collect import Collected
from lipsim_bench.report.intervals import CONFIDENCE, N_RESAMPLES, bootstrap_interval, seed_of
from lipsim_bench.report.tables import column_label
from lipsim_bench.tasks.base import TaskInfo

MCNEMAR = "mcnemar-exact"
SIGN = "sign-exact"
COLUMNS = [
    "dataset",
    "split",
    "evaluation",
    "norm",
    "eps",
    "n",
    "score_a",
    "score_b",
    "diff",
    "ci_low",
    "ci_high",
    "test",
    "p_value",
    "p_holm",
]


@dataclass
class Comparison:
    """The paired differences of A and B per common cell, as a frame and as the printed table."""

    a: str
    b: str
    frame: pd.DataFrame
    markdown: str


def _cell_rows(triplets: pd.DataFrame, metric: str, row: pd.Series) -> pd.DataFrame:
    """A metric's per-triplet rows of one score cell: its split's rows, or one group's where the cell is a group's."""
    rows = triplets[(triplets["metric"] == metric) & (triplets["dataset"] == row["dataset"])]
    rows = rows[rows["evaluation"].astype(str) == str(row["evaluation"])]
    rows = rows[rows["norm"].isna()] if not isinstance(row["norm"], str) else rows[rows["norm"] == row["norm"]]
    eps = pd.to_numeric(rows["eps"], errors="coerce")
    rows = rows[eps.isna()] if pd.isna(row["eps"]) else rows[(eps - float(row["eps"])).abs() < 1e-12]
    own = rows[rows["split"].astype(str) == str(row["split"])]
    return own if len(own) else rows[rows["group"].astype(str) == str(row["split"])]


def _test(a: np.ndarray, b: np.ndarray) -> tuple[str, float]:
    """The exact paired test of A against B: McNemar on binary agreements, else the sign test on differences."""
    if np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all():
        from statsmodels.stats.contingency_tables import mcnemar

        table = [
            [int(((a == 1) & (b == 1)).sum()), int(((a == 1) & (b == 0)).sum())],
            [int(((a == 0) & (b == 1)).sum()), int(((a == 0) & (b == 0)).sum())],
        ]
        return MCNEMAR, float(mcnemar(table, exact=True).pvalue)
    differences = a - b
    if not np.any(differences != 0):
        return SIGN, 1.0  # every triplet ties: no evidence of a difference (statsmodels refuses an all-tied sample)
    from statsmodels.stats.descriptivestats import sign_test

    return SIGN, float(sign_test(differences, mu0=0)[1])


def _pair(triplets: pd.DataFrame, a: str, b: str, row: pd.Series) -> dict | None:
    """One cell's paired comparison, or None where the two metrics share no triplet with an agreement."""
    keys = ["group", "id"]
    sides = []
    for metric in (a, b):
        rows = _cell_rows(triplets, metric, row)
        rows = rows.assign(group=rows["group"].astype(str), id=rows["id"].astype(str))
        sides.append(rows[keys + ["agreement"]].drop_duplicates(keys))
    both = sides[0].merge(sides[1], on=keys, suffixes=("_a", "_b"))
    both = both[np.isfinite(both["agreement_a"].astype(float)) & np.isfinite(both["agreement_b"].astype(float))]
    if not len(both):
        return None
    agree_a, agree_b = both["agreement_a"].to_numpy(float), both["agreement_b"].to_numpy(float)
    found = bootstrap_interval(agree_a - agree_b, both["group"].to_numpy(), seed=seed_of(row.get("seed")))
    test, p = _test(agree_a, agree_b)
    return {
        **{key: row[key] for key in ("dataset", "split", "evaluation", "norm", "eps")},
        "n": len(both),
        "score_a": 100.0 * float(agree_a.mean()),
        "score_b": 100.0 * float(agree_b.mean()),
        "diff": 100.0 * float((agree_a - agree_b).mean()),
        "ci_low": found.low,
        "ci_high": found.high,
        "test": test,
        "p_value": p,
    }


def compare_metrics(collected: Collected, a: str, b: str) -> Comparison:
    """A - B on every cell both have a score of the mean agreement (a score with an interval); bad names raise."""
    scores, triplets = collected.scores, collected.triplets
    held = list(dict.fromkeys(scores["metric"])) if len(scores) else []
    if a == b:
        raise BenchError(f"--compare {a},{b} names one metric twice; give two different metrics, e.g. --compare A,B")
    unknown = [m for m in (a, b) if m not in held]
    if unknown:
        raise BenchError(
            f"--compare: no metric {', '.join(map(repr, unknown))} in these records; they hold: {', '.join(held)}"
        )
    scored = scores[scores["ci_method"].fillna("").astype(str) != ""] if "ci_method" in scores.columns else scores
    cell = ["dataset", "split", "evaluation", "norm", "eps"]
    own_a = scored[scored["metric"] == a]
    common = own_a.merge(scored[scored["metric"] == b][cell], on=cell)
    pairs = [] if not len(triplets) else [_pair(triplets, a, b, row) for _, row in common.iterrows()]
    rows = [p for p in pairs if p is not None]
    if not rows:
        raise BenchError(
            f"--compare {a},{b}: the two metrics share no cell with per-triplet agreements (same dataset, split, "
            "evaluation, norm, eps and triplets); compare metrics of one run, or runs on the same triplets"
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    from statsmodels.stats.multitest import multipletests

    frame["p_holm"] = multipletests(frame["p_value"].to_numpy(float), method="holm")[1]
    differs = _setting_differences(scored, a, b, frame)
    tasks = {collected.task(str(d)) for d in frame["dataset"]}
    task = tasks.pop() if len(tasks) == 1 else TaskInfo("mixed", "item", "items", "score")  # datasets of several tasks
    markdown = comparison_markdown(frame, a, b, seed_of(own_a["seed"].iloc[0]), task)
    if differs:
        markdown += "\n- WARNING: the two metrics' cells were computed with other options: " + "; ".join(differs)
    return Comparison(a, b, frame, markdown)


def _options(settings: object) -> dict:
    try:
        return dict(json.loads(str(settings)).get("options", {}))
    except (TypeError, ValueError, AttributeError):
        return {}


def _setting_differences(scores: pd.DataFrame, a: str, b: str, frame: pd.DataFrame) -> list[str]:
    """Per compared cell, the attack or certificate options on which A's unit and B's differ (e.g. steps 20 vs 3
    when two runs are merged): a paired difference across settings is no like-for-like comparison."""
    if "settings" not in scores.columns:
        return []
    lines = []
    for r in frame.itertuples():
        same = (scores["evaluation"] == r.evaluation) & (scores["split"] == r.split) & (scores["dataset"] == r.dataset)
        same &= scores["eps"].isna() if pd.isna(r.eps) else (scores["eps"] - float(r.eps)).abs() < 1e-12
        found = {m: _options(scores.loc[same & (scores["metric"] == m), "settings"].iloc[0]) for m in (a, b)}
        keys = sorted(set(found[a]) | set(found[b]))
        diffs = [f"{k} {found[a].get(k)} vs {found[b].get(k)}" for k in keys if found[a].get(k) != found[b].get(k)]
        if diffs:
            eps = None if pd.isna(r.eps) else float(r.eps)
            label = column_label(str(r.evaluation), r.norm if isinstance(r.norm, str) else None, eps)
            lines.append(f"{label}: {', '.join(diffs)}")
    return lines


def _p(value: float) -> str:
    return "" if math.isnan(value) else (f"{value:.3f}" if value >= 0.001 else f"{value:.1e}")


def comparison_markdown(frame: pd.DataFrame, a: str, b: str, seed: int, task: TaskInfo | None = None) -> str:
    """The printed table: a row per cell, A and B on the common items, A - B [interval], the test's p; in the words
    of the items' task (2AFC points on triplets, Recall@1 points on queries)."""
    task = task or TaskInfo.from_dict(None)
    items, item = task.items, task.item
    places = list(dict.fromkeys(zip(frame["dataset"], frame["split"])))
    lines = [
        f"Paired difference {a} - {b} ({task.score} points) on the {items} both were scored on",
        "",
        "| "
        + " | ".join(
            (["dataset / split"] if len(places) > 1 else [])
            + ["cell", "n", a, b, f"{a} - {b} [95% CI]", "test", "p", "p (Holm)"]
        )
        + " |",
        "|" + "|".join(["---"] * (2 if len(places) > 1 else 1) + ["---:"] * 4 + ["---"] + ["---:"] * 2) + "|",
    ]
    for r in frame.itertuples():
        eps = None if pd.isna(r.eps) else float(r.eps)
        cells = (
            ([f"{r.dataset} / {r.split}"] if len(places) > 1 else [])
            + [column_label(str(r.evaluation), r.norm if isinstance(r.norm, str) else None, eps), str(r.n)]
            + [f"{r.score_a:.2f}", f"{r.score_b:.2f}", f"{r.diff:+.2f} [{r.ci_low:+.1f}, {r.ci_high:+.1f}]"]
            + [r.test, _p(r.p_value), _p(r.p_holm)]
        )
        lines.append("| " + " | ".join(cells) + " |")
    where = f" on {places[0][0]} / {places[0][1]}" if len(places) == 1 else ""
    lines += [
        "",
        f"- cells{where}: those both metrics have, on their common {items} (matched on group and id)",
        f"- [95% CI]: {round(100 * CONFIDENCE)}% BCa bootstrap of the per-{item} differences ({N_RESAMPLES} resamples "
        f"within each group, seed {seed})",
        f"- test: exact McNemar on the {items} where one metric agrees and the other not (agreements 0 or 1), "
        f"else an exact sign test on the per-{item} differences; p (Holm): adjusted over this table's cells",
    ]
    return "\n".join(lines)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")


def write_comparison(out_dir: Path, comparison: Comparison) -> list[str]:
    """compare_<A>_<B>.md and .csv next to the tables; returns their names."""
    stem = f"compare_{_safe(comparison.a)}_{_safe(comparison.b)}"
    atomic_write_text(out_dir / f"{stem}.md", comparison.markdown + "\n")
    atomic_write_text(out_dir / f"{stem}.csv", comparison.frame.to_csv(index=False))
    return [f"{stem}.md", f"{stem}.csv"]
