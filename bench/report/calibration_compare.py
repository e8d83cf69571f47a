"""A run's cells beside the published ones: difference, interval, and what in the protocol differs.

A cell matches a published one on (metric, dataset, split, evaluation, norm, eps): the run's metric name with
any random-weights label removed and registry aliases resolved, its evaluation with any setting variant
(``apgd(steps=20)``) reduced to the base name, so a differing setting shows as a protocol difference rather
than hiding the cell. A run whose weights are random (the test-only switch) is never comparable: every row
says so, whatever its number.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lipsim_bench.formatting import format_eps
from lipsim_bench.report.calibration import (
    SCORE_DEFINITIONS,
    Published,
    canonical_metric,
)
from lipsim_bench.report.collect import Collected
from lipsim_bench.report.paper_certified import paper_certified
from lipsim_bench.run.plan import RANDOM_WEIGHTS_LABEL

RANDOM_SUFFIX = RANDOM_WEIGHTS_LABEL.format(name="")
NOT_COMPARABLE = "not comparable: random weights"
COLUMNS = [
    "metric", "dataset", "split", "evaluation", "norm", "eps", "ours", "ci_low", "ci_high", "score_used",
    "soft_score", "paper_score", "published", "difference", "inside", "verdict", "source", "differences",
    "n", "published_n", "steps", "published_steps", "restarts", "published_restarts", "weights",
    "published_weights", "preprocessing", "published_preprocessing", "published_score_definition",
]  # fmt: skip


@dataclass
class Comparison:
    """The matched rows, the run's certified cells under both definitions, and the run's unmatched cells."""

    rows: pd.DataFrame
    certified: pd.DataFrame
    unmatched: list[str] = field(default_factory=list)
    random_weights: bool = False


def _is_random(metric: str, settings: dict[str, Any], conventions: dict[str, Any]) -> bool:
    return (
        metric.endswith(RANDOM_SUFFIX)
        or str(settings.get("weights", "")).startswith("random-init")
        or "random-init" in str(conventions.get("weights", ""))
    )


def weights_kind(metric: str, settings: dict[str, Any], conventions: dict[str, Any]) -> str:
    """random, none, trained by this project (bundled or not), or official: what the published cell is compared with."""
    if _is_random(metric, settings, conventions):
        return "random"
    text = str(conventions.get("weights", ""))
    if text.startswith("none"):
        return "none"
    if conventions.get("mirrors") == "this project":
        return "trained by this project" + (" (bundled)" if text.startswith("bundled") else "")
    return "official"


def run_conventions(records_dirs: list[Path]) -> dict[str, dict[str, Any]]:
    """Each metric's stated conventions, from the run's records (the first record of a metric that has them)."""
    found: dict[str, dict[str, Any]] = {}
    for folder in records_dirs:
        for path in sorted(Path(folder).glob("*.json")):
            try:
                record = json.loads(path.read_text())
                metric = record["unit"]["metric"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # read_records already named every unreadable record
            if isinstance(record.get("conventions"), dict):
                found.setdefault(metric, record["conventions"])
    return found


def _settings(raw: Any) -> dict[str, Any]:
    try:
        return json.loads(raw) if isinstance(raw, str) and raw else {}
    except ValueError:
        return {}


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _same_eps(a: Any, b: Any) -> bool:
    a, b = _num(a), _num(b)
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b)))


def _norm(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _preprocessing(conventions: dict[str, Any]) -> str:
    parts = [f"{k}: {conventions[k]}" for k in ("input", "resize") if conventions.get(k)]
    return "; ".join(parts) or "not stated"


def _differences(row: dict[str, Any]) -> list[str]:
    """The protocol differences that could explain a gap, short enough for a table cell."""
    out = []
    theirs = row["published_weights"]
    if theirs is None or (isinstance(theirs, float) and math.isnan(theirs)):
        if row["weights"] != "official":  # the sources state their weights; a file that does not: say so
            out.append(f"weights {row['weights']} vs not stated")
    elif not str(theirs).startswith(row["weights"]):  # "official (Croce et al.'s checkpoint; ...)" is official
        out.append(f"weights {row['weights']} vs {theirs}")
    if row.get("perturb", "ref") != "ref" and row["evaluation_base"] != "natural":
        out.append(f"perturbed {row['perturb']} vs ref (published attacks perturb the reference)")
    for key in ("n", "steps", "restarts"):
        ours, theirs = row[key], row[f"published_{key}"]
        if ours is None:
            continue
        if theirs is None:
            if key == "n" or row["evaluation_base"] != "natural":
                out.append(f"{key} {ours} vs not stated")
        elif int(ours) != int(theirs):
            out.append(f"{key} {ours} vs {theirs}")
    theirs_def = row["published_score_definition"]
    if theirs_def and theirs_def != row["score_definition"]:
        out.append(f"score {row['score_definition']} vs {theirs_def}")
    if row["evaluation"] != row["evaluation_base"]:
        out.append(f"setting {row['evaluation'][len(row['evaluation_base']) :]}")
    return out


def compare(collected: Collected, published: Published) -> Comparison:
    """Every (run cell, published cell) pair that matches, with the difference and the protocol's differences."""
    conventions = run_conventions(collected.records_dirs)
    scores = collected.scores
    paper = paper_certified(collected.triplets)
    cells = published.cells.assign(_metric=published.cells["metric"].map(canonical_metric))
    rows, unmatched, certified = [], [], []
    any_random = False
    for score in scores.itertuples(index=False):
        settings = _settings(score.settings)
        metric = str(score.metric)
        stated = conventions.get(metric, {})
        random = _is_random(metric, settings, stated)
        any_random |= random
        base_metric = canonical_metric(metric[: -len(RANDOM_SUFFIX)] if metric.endswith(RANDOM_SUFFIX) else metric)
        evaluation = str(score.evaluation)
        base_eval = evaluation.split("(", 1)[0]
        norm, eps = _norm(score.norm), _num(score.eps)
        ci_low = _num(getattr(score, "ci_low", None))
        ci_high = _num(getattr(score, "ci_high", None))
        paper_score = None
        if score.kind == "certificate" and base_eval == "certified":
            hit = paper[
                (paper["metric"] == metric)
                & (paper["split"] == score.split)
                & (paper["evaluation"] == evaluation)
                & paper["eps"].apply(lambda e, eps=eps: _same_eps(e, eps))
            ]
            paper_score = _num(hit["paper_score"].iloc[0]) if len(hit) else None
            certified.append(
                {
                    "metric": metric, "dataset": score.dataset, "split": score.split, "evaluation": evaluation,
                    "eps": eps, "soft_score": float(score.score), "ci_low": ci_low, "ci_high": ci_high,
                    "paper_score": paper_score, "paper_n": int(hit["paper_n"].iloc[0]) if len(hit) else None,
                    "dropped": int(hit["dropped"].iloc[0]) if len(hit) else None,
                }
            )  # fmt: skip
        match = cells[
            (cells["_metric"] == base_metric)
            & (cells["dataset"] == score.dataset)
            & (cells["split"] == score.split)
            & (cells["evaluation"] == base_eval)
            & cells["norm"].apply(lambda n, norm=norm: _norm(n) == norm)
            & cells["eps"].apply(lambda e, eps=eps: _same_eps(e, eps))
        ]
        if not len(match):
            unmatched.append(
                f"{metric} {score.dataset}/{score.split} {evaluation} {norm or ''} {format_eps(eps)}".strip()
            )
            continue
        options = settings.get("options") or {}
        for cell in match.itertuples(index=False):
            definition = cell.protocol_score_definition
            soft_def = "soft-certified" if score.kind == "certificate" else "2afc"
            use_paper = definition == "paper-certified" and paper_score is not None
            ours = paper_score if use_paper else float(score.score)
            interval = (ci_low, ci_high) if not use_paper else (None, None)
            row = {
                "metric": metric, "dataset": score.dataset, "split": score.split, "evaluation": evaluation,
                "evaluation_base": base_eval, "norm": norm, "eps": eps, "ours": ours,
                "ci_low": interval[0], "ci_high": interval[1],
                "score_used": "paper-certified" if use_paper else soft_def, "soft_score": float(score.score),
                "paper_score": paper_score, "published": float(cell.score), "difference": ours - float(cell.score),
                "source": cell.source, "n": int(score.n) if _num(score.n) is not None else None,
                "published_n": cell.n if _num(cell.n) is not None else None,
                "steps": options.get("steps") if base_eval != "natural" else None,
                "published_steps": _int(cell.protocol_steps), "restarts": options.get("restarts"),
                "published_restarts": _int(cell.protocol_restarts),
                "weights": weights_kind(metric, settings, stated), "published_weights": cell.protocol_weights,
                "perturb": str(settings.get("perturb") or "ref"),
                "preprocessing": _preprocessing(stated), "published_preprocessing": cell.protocol_preprocessing,
                "score_definition": "paper-certified" if use_paper else soft_def,
                "published_score_definition": definition,
            }  # fmt: skip
            low, high = row["ci_low"], row["ci_high"]
            row["inside"] = "-" if low is None or high is None else ("yes" if low <= row["published"] <= high else "no")
            row["differences"] = "; ".join(_differences(row)) or "none found"
            row["verdict"] = NOT_COMPARABLE if random else _verdict(row["inside"])
            rows.append(row)
    if any_random:  # one random metric taints the run: no row of it passes as a reproduction
        for row in rows:
            row["verdict"] = NOT_COMPARABLE
    frame = pd.DataFrame(rows, columns=COLUMNS + ["evaluation_base"]).drop(columns="evaluation_base")
    return Comparison(frame, pd.DataFrame(certified), unmatched, any_random)


def _int(value: Any) -> int | None:
    value = _num(value)
    return None if value is None else int(value)


def _verdict(inside: str) -> str:
    return {"yes": "published value inside our interval", "no": "published value outside our interval"}.get(
        inside, "no interval in this run's scores"
    )


def _fmt(value: Any, digits: int = 2) -> str:
    value = _num(value)
    return "-" if value is None else f"{value:.{digits}f}"


def _cell(row: Any) -> str:
    return " ".join(p for p in (str(row.evaluation), _norm(row.norm) or "", format_eps(_num(row.eps))) if p)


def render_markdown(comparison: Comparison, published: Published, run_dir: str) -> str:
    """compare.md: the side-by-side table, the certified cells under both definitions, sources, definitions."""
    lines = [f"Calibration of {run_dir} against published cells ({published.path})", ""]
    if comparison.random_weights:
        lines += [
            f"**Every cell is {NOT_COMPARABLE}**: this run built its metrics with random weights "
            "(LIPSIM_BENCH_RANDOM_WEIGHTS=1, a test switch); its numbers say nothing about the published metrics.",
            "",
        ]
    lines += [
        "| metric | split | cell | ours [95% interval] | published | difference | inside | verdict | source "
        "| protocol differences |",
        "|---|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for row in comparison.rows.itertuples(index=False):
        interval = "" if _num(row.ci_low) is None else f" [{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]"
        ours = f"{_fmt(row.ours)}{interval}" + (" (paper def.)" if row.score_used == "paper-certified" else "")
        lines.append(
            f"| {row.metric} | {row.dataset}/{row.split} | {_cell(row)} | {ours} | {_fmt(row.published)} "
            f"| {_fmt(row.difference, 2)} | {row.inside} | {row.verdict} | {row.source} | {row.differences} |"
        )
    if len(comparison.certified):
        lines += [
            "",
            "Certified cells under both definitions (soft: this project's score; paper: the LipSim paper's certified "
            "accuracy, p = 0.5 dropped, targets rounded):",
            "",
            "| metric | split | cell | soft [95% interval] | paper | triplets kept (p = 0.5 dropped) |",
            "|---|---|---|---:|---:|---:|",
        ]
        for row in comparison.certified.itertuples(index=False):
            interval = "" if _num(row.ci_low) is None else f" [{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]"
            kept = "-" if row.paper_n is None or pd.isna(row.paper_n) else f"{int(row.paper_n)} ({int(row.dropped)})"
            lines.append(
                f"| {row.metric} | {row.dataset}/{row.split} | certified l2 {format_eps(row.eps)} "
                f"| {_fmt(row.soft_score)}{interval} | {_fmt(row.paper_score)} | {kept} |"
            )
    if len(comparison.rows):
        pairs = comparison.rows[["metric", "source", "preprocessing", "published_preprocessing"]].drop_duplicates()
        lines += ["", "Preprocessing (ours; published):"]
        lines += [
            f"- {r.metric} vs {r.source}: {r.preprocessing}; {r.published_preprocessing or 'not stated'}"
            for r in pairs.itertuples(index=False)
        ]
    if comparison.unmatched:
        lines += ["", f"{len(comparison.unmatched)} cell(s) of the run have no published counterpart."]
    used = sorted(set(comparison.rows["source"])) if len(comparison.rows) else []
    if used:
        lines += ["", "Sources:"]
        lines += [
            f"- {s}: {published.sources[s]['title']} ({published.sources[s]['year']}), {published.sources[s]['where']}; {published.sources[s]['url']}"
            for s in used
        ]
    lines += ["", "Score definitions:"] + [f"- {k}: {v}" for k, v in SCORE_DEFINITIONS.items()]
    return "\n".join(lines) + "\n"
