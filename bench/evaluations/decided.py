"""Triplets whose attack outcome is already decided, so no attack step is spent on them.

* **Carried flips.** Radii of one norm are nested balls: a perturbation that flipped a triplet at
  a smaller eps lies inside every larger ball, so the triplet counts as flipped there with that same
  perturbation (its distances and ||delta|| are carried over). Robust scores are then monotone in
  eps by construction, and only the survivors are attacked again.
* **Proven robust.** Inside a triplet's certified radius the decision cannot change, so an attack
  can only fail. Only a bound the project computes itself qualifies
  (:func:`metrics.bound_proven_by_project`: a fixed set of the project's own classes, exactly, never
  a subclass or anything a plugin can register); a bound a plugin declares keeps being attacked and
  checked. The radius is the one of the run's perturbation target (``--perturb``). An l-inf ball of
  radius eps lies inside the l2 ball of radius eps * sqrt(D), D the perturbed input's size (3 C H W for
  the stacked triplet of ``--perturb all``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import EmbeddedBatch
from lipsim_bench.evaluations.bound_checks import checked_bound
from lipsim_bench.evaluations.radii import certified_radius
from lipsim_bench.evaluations.targets import input_dimension
from lipsim_bench.formatting import format_eps
from lipsim_bench.metrics import PerceptualMetric, bound_proven_by_project

#: Per-triplet columns of an attack unit: exactly one is true for an initially correct triplet.
WORK_COLUMNS = ("attacked", "carried", "proven")


@dataclass(frozen=True)
class CarriedFlips:
    """The flips of the unit at the next smaller radius, by dataset position."""

    ids: np.ndarray
    flipped: np.ndarray
    d0: np.ndarray
    d1: np.ndarray
    delta_norm: np.ndarray
    delta_l2: np.ndarray | None = None  # absent from rows stored before the column existed

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, metric_name: str) -> CarriedFlips:
        missing = [c for c in ("id", "flipped", "d0", "d1", "delta_norm") if c not in rows.columns]
        if missing:
            raise BenchError(
                f"metric {metric_name!r}: the smaller radius's stored rows lack {', '.join(missing)}; "
                "delete that record (or the run folder) and rerun"
            )
        flipped = as_bool(rows["flipped"])
        return cls(
            rows["id"].astype(str).to_numpy(),
            flipped,
            rows["d0"].to_numpy(np.float64),
            rows["d1"].to_numpy(np.float64),
            rows["delta_norm"].fillna(0.0).to_numpy(np.float64),
            rows["delta_l2"].to_numpy(np.float64) if "delta_l2" in rows.columns else None,
        )

    def apply(
        self, item: EmbeddedBatch, d0: Tensor, d1: Tensor, delta_norm: Tensor, delta_l2: Tensor | None = None
    ) -> Tensor:
        """Write the carried flips' adversarial distances into ``d0``, ``d1``, ``delta_norm`` (and ``delta_l2``:
        NaN where the stored rows lack it); return the mask."""
        positions = item.batch["index"].numpy()
        if positions.size and (
            positions.max() >= len(self.ids) or list(self.ids[positions]) != [str(i) for i in item.batch["id"]]
        ):
            raise BenchError(
                "the smaller radius's stored rows are for other triplets; delete the run folder's records and rerun"
            )
        mask = torch.from_numpy(self.flipped[positions].copy())
        if mask.any():
            d0[mask] = torch.from_numpy(self.d0[positions][mask.numpy()]).to(d0.dtype)
            d1[mask] = torch.from_numpy(self.d1[positions][mask.numpy()]).to(d1.dtype)
            delta_norm[mask] = torch.from_numpy(self.delta_norm[positions][mask.numpy()])
            if delta_l2 is not None:
                stored = self.delta_l2[positions][mask.numpy()] if self.delta_l2 is not None else np.nan
                delta_l2[mask] = torch.as_tensor(stored, dtype=delta_l2.dtype)
        return mask

    def or_else(self, other: CarriedFlips) -> CarriedFlips:
        """These flips, and ``other``'s where these have none (the same triplets, in the same order)."""
        if list(self.ids) != list(other.ids):
            raise BenchError("the flips to carry are for other triplets; delete the run folder's records and rerun")
        take = ~self.flipped & other.flipped
        pick = lambda mine, theirs: np.where(take, theirs, mine)  # noqa: E731
        l2 = None
        if self.delta_l2 is not None or other.delta_l2 is not None:
            nan = np.full(len(self.ids), np.nan)
            l2 = pick(
                nan if self.delta_l2 is None else self.delta_l2, nan if other.delta_l2 is None else other.delta_l2
            )
        return CarriedFlips(
            self.ids,
            self.flipped | other.flipped,
            pick(self.d0, other.d0),
            pick(self.d1, other.d1),
            pick(self.delta_norm, other.delta_norm),
            l2,
        )


def l2_ball_radius(norm: str, eps: float, image_shape: tuple[int, ...], perturb: str = "ref") -> float:
    """The l2 radius of the smallest l2 ball holding the ``norm`` ball of radius ``eps`` of the perturbed input
    (one image of ``image_shape``, or the three of a triplet for ``perturb="all"``)."""
    if norm == "l2":
        return eps
    if norm == "linf":
        return eps * math.sqrt(input_dimension(image_shape, perturb))
    raise ValueError(f"no l2 ball for norm {norm!r}")


def proven_robust(
    metric: PerceptualMetric, item: EmbeddedBatch, norm: str, eps: float, metric_name: str, perturb: str = "ref"
) -> Tensor:
    """Triplets whose certified l2 radius for the ``perturb`` target (from the project's own bound) exceeds the
    threat ball; none for any other bound (the caller asks only for the project's, this guards the rule where it acts)."""
    ref = item.batch["ref"]
    if not bound_proven_by_project(metric):
        return torch.zeros(len(item.p), dtype=torch.bool)
    lipschitz = checked_bound(metric, item, metric_name)
    radius = certified_radius(metric.distance_kind, item.e_ref, item.e0, item.e1, lipschitz, perturb)
    # a margin against rounding: a triplet exactly at the radius is attacked
    return radius > l2_ball_radius(norm, eps, tuple(ref.shape[1:]), perturb) * (1 + 1e-6) + 1e-9


def work_counts(rows: pd.DataFrame) -> dict[str, int]:
    """How many triplets were attacked, carried and proven in one unit's rows (0 for old rows)."""
    return {c: int(as_bool(rows[c]).sum()) if c in rows.columns else 0 for c in WORK_COLUMNS}


def as_bool(column: pd.Series) -> np.ndarray:
    """A boolean column as computed or as read back from CSV (bools, or the text True/False; missing is False)."""
    if column.dtype == bool:
        return column.to_numpy()
    return column.map(lambda v: v is True or str(v).strip().lower() in ("true", "1", "1.0")).to_numpy(bool)


def work_notes(metric_name: str, evaluation: str, rows: pd.DataFrame) -> list[str]:
    """The table footer's account of what was not attacked, and why that is sound."""
    if not len(rows) or "carried" not in rows.columns:
        return []
    counts = work_counts(rows)
    if not counts["carried"] and not counts["proven"]:
        return []
    eps = rows["eps"].iloc[0]
    norm = rows["norm"].iloc[0]
    parts = [f"{counts['attacked']} attacked"]
    if counts["carried"]:
        parts.append(f"{counts['carried']} flips carried from the smaller radius")
    if counts["proven"]:
        parts.append(f"{counts['proven']} robust by the project's certificate (not attacked)")
    return [f"{metric_name} {evaluation} {norm} {format_eps(float(eps))}: " + ", ".join(parts)]
