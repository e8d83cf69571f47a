"""``worst-case``: the robust 2AFC score over every attack of the run, triplet by triplet (AutoAttack's rule).

A triplet counts as robust at a radius only if every attack run at that radius failed on it: its agreement is
the lowest any attack left it with, and the attack that got there is named in the ``by`` column. So the
worst-case column is never above any single attack's column, and it is an upper bound on the true robust score
that names the attacks it survived (the footer lists them).

It attacks nothing itself: it reads the rows of the run's attack units of the same metric and threat model
(:meth:`Evaluation.depends_on`), so it costs nothing beyond them, and their keys are part of its key.

AutoAttack's sanity check on the ensemble is its note: a gradient-free attack (Square) that finds flips where
every gradient attack failed is a sign of gradient masking. With attacks run independently the comparison is
paired: an exact one-sided McNemar (binomial) test on the triplets one side flips and the other does not;
with attacks run in a cascade (``after``), AutoAttack's own rule applies: the black-box attack lowering the
robust score by more than 0.2 points.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import (
    Context,
    EmbeddedBatch,
    Evaluation,
    Kind,
    PassCost,
    UnitRef,
    empty_rows,
    natural_agreement,
)
from lipsim_bench.evaluations.decided import as_bool
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.formatting import format_eps
from lipsim_bench.metrics import PerceptualMetric

#: AutoAttack's ``check_square_sr`` threshold: Square lowering robust accuracy by more than 0.2 points.
AUTOATTACK_ALPHA = 0.2
NO_ATTACK = "worst-case needs at least one attack in the run (e.g. --evaluations natural,apgd,square,worst-case)"
#: Significance of the paired test that calls a black-box attack stronger than the gradient attacks.
MASKING_LEVEL = 0.05


def is_attack(evaluation: Evaluation) -> bool:
    """An attack unit's evaluation (not the worst case itself, nor anything that only reads attacks)."""
    return evaluation.kind is Kind.ATTACK and not isinstance(evaluation, WorstCase)


def uses_gradients(evaluation: Evaluation) -> bool:
    """Whether an attack evaluation's attack follows input gradients (Square declares it does not)."""
    attack = getattr(evaluation, "attack_cls", None)
    return bool(getattr(attack, "uses_gradients", True))


@register_evaluation
class WorstCase(Evaluation):
    """Per-triplet worst case over the run's attacks at each threat model."""

    name = "worst-case"
    kind = Kind.ATTACK
    per_threat = True
    description = (
        "robust 2AFC score over every attack of the run: robust only if every attack failed (AutoAttack's rule)"
    )

    def depends_on(self, metric: str, threat: object, run: tuple[UnitRef, ...]) -> list[UnitRef]:
        found = [ref for ref in run if ref.metric == metric and ref.threat == threat and is_attack(ref.evaluation)]
        if not found:
            raise BenchError(NO_ATTACK)
        # which of them search without gradients, for the masking check of notes()
        self.gradient_free = tuple(ref.evaluation.column for ref in found if not uses_gradients(ref.evaluation))
        self.over = tuple(ref.evaluation.column for ref in found)
        return found

    def resolved(self, threat: object, seed: int) -> dict[str, object]:
        """Its options and the attacks it is over: another set of attacks is another setting (its own column), never
        a replacement of this one (planning calls depends_on first)."""
        return {**super().resolved(threat, seed), "over": list(getattr(self, "over", ()))}

    def flops(self, cost: PassCost, n_triplets: int, threat: object, attacked: float = 1.0) -> float:
        return 3 * n_triplets * cost.forward  # the clean embeddings the batches carry; no attack step

    def run(self, metric: PerceptualMetric, batches: Iterable[EmbeddedBatch], ctx: Context) -> pd.DataFrame:
        attacks = {address[1]: rows for address, rows in ctx.inputs.items()}
        if not attacks:
            raise BenchError(NO_ATTACK)
        parts = []
        for item in batches:
            positions = item.batch["index"].numpy()
            assert ctx.threat is not None, "worst-case units are per threat model"
            part = item.rows(self.name, ctx.threat.norm, ctx.threat.eps, natural_agreement(item))
            parts.append(_worst(part, attacks, positions))
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()

    def notes(self, metric_name: str, rows: pd.DataFrame) -> list[str]:
        if not len(rows) or "by" not in rows.columns:
            return []
        norm, eps = rows["norm"].iloc[0], float(rows["eps"].iloc[0])
        where = f"{metric_name} worst-case {norm} {format_eps(eps)}"
        over = [c[len("flipped:") :] for c in rows.columns if c.startswith("flipped:")]
        lines = [f"{where}: over {', '.join(over)}, " + _tally(rows, over)]
        return lines + masking_notes(where, rows, over, getattr(self, "gradient_free", ()))


def _worst(part: pd.DataFrame, attacks: dict[str, pd.DataFrame], positions: np.ndarray) -> pd.DataFrame:
    """The batch's rows with the lowest agreement any attack left, the attack that left it, and each attack's flips."""
    worst = part["agreement"].to_numpy().copy()
    clean = worst.copy()
    by = np.array([""] * len(part), dtype=object)
    d0, d1 = part["d0"].to_numpy().copy(), part["d1"].to_numpy().copy()
    delta = np.zeros(len(part))
    masked = np.zeros(len(part), dtype=bool)
    extra: dict[str, np.ndarray] = {}
    for name, rows in attacks.items():
        aligned = _aligned(rows, positions, part["id"], name)
        agreement = aligned["agreement"].to_numpy(np.float64)
        lower = agreement < worst - 1e-12
        worst = np.where(lower, agreement, worst)
        by = np.where(lower, name, by)
        d0 = np.where(lower, aligned["d0"].to_numpy(np.float64), d0)
        d1 = np.where(lower, aligned["d1"].to_numpy(np.float64), d1)
        if "delta_norm" in aligned.columns:
            delta = np.where(lower, aligned["delta_norm"].fillna(0.0).to_numpy(np.float64), delta)
        if "grad_masked" in aligned.columns:
            masked |= as_bool(aligned["grad_masked"])
        extra[f"flipped:{name}"] = as_bool(aligned["flipped"]) if "flipped" in aligned.columns else agreement < clean
    return part.assign(
        agreement=worst,
        d0=d0,
        d1=d1,
        delta_norm=delta,
        flipped=part["correct"].to_numpy(bool) & (worst <= 0.5),
        by=by,
        grad_masked=masked,
        **extra,
    )


def _aligned(rows: pd.DataFrame, positions: np.ndarray, ids: pd.Series, name: str) -> pd.DataFrame:
    """An attack's rows for the batch's triplets, in the batch's order (checked by id)."""
    if "position" in rows.columns:
        picked = rows.set_index("position").reindex(positions)
    else:  # stored rows lose the position column: they are in dataset order, one per triplet
        picked = rows.iloc[positions].reset_index(drop=True)
    if picked["id"].isna().any() or list(picked["id"].astype(str)) != [str(i) for i in ids]:
        raise BenchError(
            f"worst-case: the rows of attack {name!r} are for other triplets; delete the run folder's records and rerun"
        )
    return picked.reset_index(drop=True)


def _tally(rows: pd.DataFrame, over: list[str]) -> str:
    """How many correct triplets are flipped, and by which attack first (in the run's order: with a cascade the
    later attacks' columns include the earlier ones' flips, so only the first finder says who found it)."""
    correct = as_bool(rows["correct"])
    flipped = as_bool(rows["flipped"])
    first = np.array([""] * len(rows), dtype=object)
    for name in reversed(over):
        first = np.where(as_bool(rows[f"flipped:{name}"]), name, first)
    found = ", ".join(f"{name} {int((first == name).sum())}" for name in over)
    return f"{int(flipped.sum())} of {int(correct.sum())} correct triplets flipped, first by {found}"


def masking_notes(where: str, rows: pd.DataFrame, over: list[str], gradient_free: tuple[str, ...]) -> list[str]:
    """AutoAttack's check: a gradient-free attack beating every gradient attack by more than noise."""
    from scipy.stats import binomtest

    black = [name for name in over if name in gradient_free]
    white = [name for name in over if name not in black]
    if not black or not white:
        return []
    n = len(rows)
    white_flips = np.zeros(n, dtype=bool)
    for name in white:
        white_flips |= as_bool(rows[f"flipped:{name}"])
    lines = []
    for name in black:
        mine = as_bool(rows[f"flipped:{name}"])
        only_black, only_white = int((mine & ~white_flips).sum()), int((white_flips & ~mine).sum())
        if only_black == 0:
            continue
        p_value = binomtest(only_black, only_black + only_white, 0.5, alternative="greater").pvalue
        points = 100.0 * only_black / n
        sign = p_value < MASKING_LEVEL or (only_white == 0 and points > AUTOATTACK_ALPHA)
        verdict = "a sign of gradient masking" if sign else "within noise"
        lines.append(
            f"{where}: {name} flipped {only_black} triplets every gradient attack ({', '.join(white)}) left robust, "
            f"and they flipped {only_white} it did not (exact paired test p = {p_value:.3g}): {verdict}"
        )
    return lines
