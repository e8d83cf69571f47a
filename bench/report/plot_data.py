"""The numbers behind the figures, from a run folder's CSVs: panels by evaluation kind, certified
curves recomputed per triplet with the scoring's own functions, empirical radii from attacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.radii import certified_agreement
from lipsim_bench.evaluations.twoafc import twoafc_agreement
from lipsim_bench.formatting import format_eps
from lipsim_bench.report.paper_certified import PAPER_EVALUATION
from lipsim_bench.report.tables import legacy_kind
from lipsim_bench.tasks.base import TaskInfo

#: Scores and certified curves agree to float rounding (size-weighted mean vs plain mean).
SCORE_TOLERANCE = 1e-6


# --- reading ---------------------------------------------------------------------------------


def run_task(run_dir: Path) -> TaskInfo:
    """The task a run folder's records name (their first that names one); a folder of CSVs only: the task whose
    per-item file it holds (queries.csv, images.csv); else 2AFC's (older records, or triplets.csv)."""
    for path in sorted((Path(run_dir) / "records").glob("*.json")):
        try:
            task = json.loads(path.read_text()).get("task")
        except (OSError, ValueError, AttributeError):
            continue
        if task:
            return TaskInfo.from_dict(task)
    from lipsim_bench.tasks import list_tasks, task_info  # the registry, only for a folder without records

    held = [info for info in map(task_info, list_tasks()) if (Path(run_dir) / info.rows_file).is_file()]
    return held[0] if len(held) == 1 else TaskInfo.from_dict(None)


def read_optional(path: Path) -> pd.DataFrame | None:
    """A CSV that a run may or may not have written (histogram.csv needs --histogram), checked (see check_frame)."""
    return check_frame(pd.read_csv(path), path.name) if path.is_file() else None


#: What each CSV must hold for the figures (the report writes more); ranges of the numbers they are drawn from.
REQUIRED = {
    "scores.csv": ("metric", "split", "evaluation", "eps", "score", "n"),
    "triplets.csv": ("metric", "split", "evaluation", "id", "p", "d0", "d1"),
}
RANGES = {
    "score": (0.0, 100.0),
    "p": (0.0, 1.0),
    "d0": (None, None),
    "d1": (None, None),
    "radius": (0.0, None),
    "delta_norm": (0.0, None),
}


def check_frame(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Refuse a CSV the figures would draw wrongly: missing columns, no rows, or numbers that are not
    numbers, not finite or out of range (a NaN p would draw a curve without a word). Empty cells are
    kept where a column is optional for some rows (radius on attack rows)."""
    missing = [c for c in REQUIRED.get(name, ()) if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {', '.join(missing)}")
    if frame.empty and name in REQUIRED:
        raise ValueError(f"{name} has a header but no rows")
    for column, (low, high) in RANGES.items():
        if column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column].notna() & ~np.isfinite(values.fillna(np.inf))  # given, but not a finite number
        if column in REQUIRED.get(name, ()):
            bad |= frame[column].isna()
        if low is not None:
            bad |= values < low
        if high is not None:
            bad |= values > high
        if bad.any():
            first = frame[column][bad].iloc[0]
            span = (
                f" in [{low:g}, {high:g}]"
                if low is not None and high is not None
                else (f" >= {low:g}" if low is not None else "")
            )
            raise ValueError(
                f"{name}: {int(bad.sum())} value(s) of {column} are not finite numbers{span} (e.g. {first})"
            )
    return frame


def as_bool(values: pd.Series) -> pd.Series:
    """CSV booleans come back as bool, 0/1/NaN floats (mixed with empty cells) or strings."""
    if values.dtype == bool:
        return values
    if pd.api.types.is_numeric_dtype(values):
        return values.fillna(0).astype(bool)
    return values.astype(str).str.strip().str.lower().isin(("true", "1", "1.0"))


def histogram_bounds(frame: pd.DataFrame) -> pd.Series:
    """A histogram panel's certified bounds on d(x, x + delta) (none for metrics without one, or runs before the column)."""
    if "bound" not in frame.columns:
        return pd.Series(dtype=np.float64, name="bound")
    return pd.to_numeric(frame["bound"], errors="coerce").dropna().astype(np.float64)


def kinds(frame: pd.DataFrame) -> pd.Series:
    """Each row's evaluation kind (clean, attack, certificate, diagnostic): it alone picks the panels."""
    if "kind" in frame.columns:
        return frame["kind"].fillna("").astype(str)
    return frame["evaluation"].map(legacy_kind)


def triplets_of_split(triplets: pd.DataFrame, split: str) -> pd.DataFrame:
    """Triplet rows of a headline split (column split) or of one of its halves (column group)."""
    if (triplets["split"] == split).any():
        return triplets[triplets["split"] == split]
    return triplets[triplets["group"] == split]


def metric_order(*frames: pd.DataFrame | None) -> list[str]:
    """Metrics in run order: the order of panels and legend entries (colours come from the name, see palette.py)."""
    names: list[str] = []
    for frame in frames:
        if frame is not None and "metric" in frame.columns:
            names += [m for m in dict.fromkeys(frame["metric"]) if m not in names]
    return names


# --- numbers behind the figures ---------------------------------------------------------------


def certified_rows(triplets: pd.DataFrame, metric: str, evaluation: str | None = None) -> pd.DataFrame:
    """One row per triplet of a certificate evaluation (all of the metric's when ``evaluation`` is None):
    the radius does not depend on eps, rows repeat per eps."""
    rows = triplets[(triplets["metric"] == metric) & (kinds(triplets) == "certificate")]
    if evaluation is not None:
        rows = rows[rows["evaluation"] == evaluation]
    rows = rows[rows["radius"].notna()] if "radius" in rows.columns else rows.iloc[:0]
    return rows.drop_duplicates(["evaluation", "id"])


def certificate_curves(triplets: pd.DataFrame) -> list[tuple[str, str]]:
    """(metric, evaluation) of every certificate with per-triplet radii, in run order: one curve each."""
    rows = triplets[kinds(triplets) == "certificate"]
    rows = rows[rows["radius"].notna()] if "radius" in rows.columns else rows.iloc[:0]
    return [(str(m), str(e)) for m, e in dict.fromkeys(zip(rows["metric"], rows["evaluation"]))]


def base_certificate(triplets: pd.DataFrame, metric: str) -> str | None:
    """The metric's first certificate whose radius is about its own decision (not a smoothed one, see
    bench/evaluations/smoothing.py): the one an attack on the metric can be checked against."""
    rows = certified_rows(triplets, metric)
    if "smoothed" in rows.columns:
        rows = rows[~as_bool(rows["smoothed"])]
    return str(rows["evaluation"].iloc[0]) if len(rows) else None


def certified_curve(
    triplets: pd.DataFrame, metric: str, radii: np.ndarray, evaluation: str | None = None
) -> np.ndarray:
    """Certified 2AFC score (%) at each radius, exactly as the certificate evaluation scores it.

    Reuses lipsim_bench.evaluations.radii.certified_agreement on the per-triplet columns: the agreement of the
    rows' decision (from d0, d1, p) where radius > r, the worst agreement min(p, 1 - p) otherwise.
    """
    rows = certified_rows(triplets, metric, evaluation)
    if rows.empty:
        raise ValueError(
            f"no certified rows for metric {metric!r}" + (f" and evaluation {evaluation!r}" if evaluation else "")
        )
    if rows["evaluation"].nunique() > 1:
        raise ValueError(
            f"metric {metric!r} has several certificates ({', '.join(rows['evaluation'].unique())}); name one"
        )
    d0, d1, p, radius = (torch.tensor(rows[c].to_numpy(dtype=np.float64)) for c in ("d0", "d1", "p", "radius"))
    agreement = twoafc_agreement(d0, d1, p)
    return np.array(
        [
            100.0 * float(certified_agreement(agreement, p, radius, float(r)).mean())
            for r in np.asarray(radii, dtype=np.float64)
        ]
    )


def certified_points(scores: pd.DataFrame, split: str) -> pd.DataFrame:
    """The table's certified scores of one split: metric, evaluation, eps, score (the paper-defined scores beside
    NIGHT's soft ones have no curve of their own: bench/report/paper_certified.py)."""
    derived = scores["evaluation"].astype(str).str.startswith(PAPER_EVALUATION)
    rows = scores[(scores["split"] == split) & (kinds(scores) == "certificate") & ~derived]
    return rows[["metric", "evaluation", "eps", "score"]].sort_values(["metric", "evaluation", "eps"], kind="stable")


def certified_mismatches(
    triplets: pd.DataFrame, scores: pd.DataFrame, split: str, tolerance: float = SCORE_TOLERANCE
) -> list[str]:
    """Table points that are not on their recomputed certified curve, one line each."""
    problems = []
    for (metric, evaluation), part in certified_points(scores, split).groupby(["metric", "evaluation"], sort=False):
        if certified_rows(triplets, str(metric), str(evaluation)).empty:
            problems.append(f"{metric}: scores.csv has {evaluation} scores, triplets.csv no {evaluation} rows")
            continue
        curve = certified_curve(triplets, str(metric), part["eps"].to_numpy(), str(evaluation))
        for eps, table, recomputed in zip(part["eps"], part["score"], curve):
            if abs(table - recomputed) > tolerance:
                problems.append(
                    f"{metric} {evaluation} at eps {format_eps(float(eps))}: scores.csv has {table:.6g}, triplets.csv gives {recomputed:.6g}"
                )
    return problems


def check_certified_points(triplets: pd.DataFrame, scores: pd.DataFrame, split: str) -> None:
    """Refuse a certified figure whose table markers would not lie on the curve."""
    problems = certified_mismatches(triplets, scores, split)
    if problems:
        raise ValueError("scores.csv and triplets.csv disagree on certified scores:\n" + "\n".join(problems))


def attacked_ids(triplets: pd.DataFrame, metric: str) -> pd.Index:
    """Triplets some l2 attack tried: those correct before the attack (the runner attacks only those)."""
    rows = triplets[(triplets["metric"] == metric) & (kinds(triplets) == "clean")]
    return pd.Index(rows.loc[as_bool(rows["correct"]), "id"].unique())


# --- drawing helpers --------------------------------------------------------------------------


# --- choosing what to draw (plot --metrics/--evaluations) ---------------------------------------


def listed_names(value: str | None, option: str) -> list[str] | None:
    """``A,B`` as a list (None: the option was not given); an empty list is refused in one line."""
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise BenchError(f"plot {option} names nothing; give names separated by commas, e.g. {option} A,B")
    return names


def select_rows(
    frames: dict[str, pd.DataFrame | None],
    metrics: list[str] | None,
    evaluations: list[str] | None,
    where: str,
) -> dict[str, pd.DataFrame | None]:
    """The frames cut to the named metrics and evaluations (clean rows kept: every figure's baseline; the
    histogram is the ``direct`` evaluation's). A name no frame holds is refused in one line naming those it has."""
    present = [f for f in frames.values() if f is not None]
    have_metrics = list(dict.fromkeys(m for f in present for m in f["metric"].astype(str)))
    have_evaluations = list(
        dict.fromkeys(
            [
                e
                for name, f in frames.items()
                if f is not None and name != "histogram"
                for e in f["evaluation"].astype(str)
            ]
            + (["direct"] if frames.get("histogram") is not None else [])
        )
    )
    for option, wanted, have in (
        ("--metrics", metrics, have_metrics),
        ("--evaluations", evaluations, have_evaluations),
    ):
        unknown = [w for w in wanted or () if w not in have]
        if unknown:
            raise BenchError(
                f"plot {option}: {where} has no {', '.join(repr(u) for u in unknown)}; it has {', '.join(have) or 'none'}"
            )
    out: dict[str, pd.DataFrame | None] = {}
    for name, frame in frames.items():
        if frame is None:
            out[name] = None
            continue
        keep = frame["metric"].astype(str).isin(metrics) if metrics else pd.Series(True, index=frame.index)
        if evaluations and name == "histogram":
            keep &= "direct" in evaluations
        elif evaluations:
            keep &= frame["evaluation"].astype(str).isin(evaluations) | (kinds(frame) == "clean")
        out[name] = frame[keep]
    return out
