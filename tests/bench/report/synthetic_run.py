"""A tiny, seeded run folder's CSVs for any number of metrics: what the figure tests draw from.

Per metric: natural, an l2 APGD and an FMN sweep, a Lipschitz certificate, and direct-attack distances, on
``n`` triplets (scores from the benchmark's own scoring, so certified points lie on their curves).
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pandas as pd

#: Real names first (fixed palette entries), then unknown ones (hashed into the palette).
NAMES = ("pixel-l2", "lipsim-tiny", "convsim-tiny", "dreamsim", "my-metric", "lpips", "another-one", "clip")
ATTACK_EPS = (0.25, 0.5, 1.0, 2.0)
CERTIFIED_EPS = (36 / 255, 72 / 255, 108 / 255)


def _settings(steps: int | None = None, n_data: str = "sha256:0") -> str:
    options = {} if steps is None else {"steps": steps}
    return json.dumps({"data": n_data, "options": options, "perturb": "ref", "weights": "w"}, sort_keys=True)


def synthetic_triplets(count: int, n: int = 12, seed: int = 0) -> pd.DataFrame:
    """Per-triplet rows of the first ``count`` metrics (triplets.csv's layout); fewer metrics: the same rows."""
    every = _all_triplets(n, seed)
    return every[every["metric"].isin(NAMES[:count])].reset_index(drop=True)


@lru_cache(maxsize=4)
def _all_triplets(n: int, seed: int) -> pd.DataFrame:
    count = len(NAMES)
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    p = rng.choice([0.0, 1.0], size=n)
    parts = []
    for k, metric in enumerate(NAMES[:count]):
        scale = 10.0 if k % 2 == 0 else 0.1  # l2-like and 1-cos-like distances
        d0 = rng.uniform(0.2, 1.0, n) * scale
        d1 = rng.uniform(0.2, 1.0, n) * scale
        agree = np.where(d0 < d1, 1 - p, p)
        # one metric's radii span three decades (a log-scale scatter panel), the others' one
        radius = 10 ** rng.uniform(-3, 0, n) if k == 1 else rng.uniform(0.05, 1.5, n)
        empirical = radius * rng.uniform(1.0, 1.5, n)

        def rows(evaluation: str, kind: str, norm: object, eps: float, agreement: np.ndarray, **extra: object):
            return pd.DataFrame(
                {
                    "metric": metric,
                    "dataset": "sample",
                    "split": "test",
                    "group": "test",
                    "evaluation": evaluation,
                    "kind": kind,
                    "norm": norm,
                    "eps": eps,
                    "id": ids,
                    "p": p,
                    "d0": d0,
                    "d1": d1,
                    "agreement": agreement,
                    "correct": agreement > 0.5,
                    **extra,
                }
            )

        parts.append(rows("natural", "clean", None, np.nan, agree))
        for eps in CERTIFIED_EPS:
            certified = np.where(radius > eps, agree, np.minimum(p, 1 - p))
            parts.append(rows("certified", "certificate", "l2", eps, certified, radius=radius))
        for evaluation, found in (("apgd", empirical * 1.1), ("fmn", empirical)):
            for eps in ATTACK_EPS:
                flipped = (found <= eps) & (agree > 0.5)
                parts.append(
                    rows(
                        evaluation,
                        "attack",
                        "l2",
                        eps,
                        np.where(flipped, 0.0, agree),
                        delta_norm=np.where(flipped, found, eps),
                        flipped=flipped,
                    )
                )
    return pd.concat(parts, ignore_index=True)


def synthetic_scores(triplets: pd.DataFrame, marked: str | None = None) -> pd.DataFrame:
    """scores.csv from the per-triplet rows (mean agreement: one group), with made-up intervals; ``marked``: that
    metric's apgd cells at n/2 triplets (so the table marks them)."""
    keys = ["metric", "dataset", "split", "evaluation", "kind", "norm", "eps"]
    scores = triplets.groupby(keys, sort=False, dropna=False)["agreement"].agg(["mean", "size"]).reset_index()
    scores["score"] = 100.0 * scores.pop("mean")
    scores["n"] = scores.pop("size").astype(int)
    if marked is not None:
        scores.loc[(scores["metric"] == marked) & (scores["evaluation"] == "apgd"), "n"] //= 2
    half = 100.0 / np.sqrt(scores["n"].clip(lower=1))
    scores["ci_low"] = (scores["score"] - half).clip(lower=0.0)
    scores["ci_high"] = (scores["score"] + half).clip(upper=100.0)
    scores["seed"] = 0
    scores["settings"] = [_settings(20 if kind == "attack" else None) for kind in scores["kind"]]
    return scores


def synthetic_histogram(count: int, n: int = 12, seed: int = 0) -> pd.DataFrame:
    """histogram.csv: d(x, x + delta) per metric, on the metric's own scale (l2-like, then 1-cos-like)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, metric in enumerate(NAMES[:count]):
        scale = 10.0 if k % 2 == 0 else 0.1
        frames.append(
            pd.DataFrame(
                {
                    "id": np.arange(n),
                    "group": "test",
                    "eps": 0.5,
                    "distance": rng.uniform(0, 0.8, n) * scale,
                    "metric": metric,
                    "bound": 0.5 * scale if k % 2 == 0 else np.nan,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
