"""``transfer``: how a metric B decides on the adversarial examples an attack crafted on a metric A.

For each threat model, B's unit depends on the attack units (option ``attack``, default ``apgd``) of every
metric A of the run at that radius, and on the smaller radii their carried flips come from, and reads the
examples those units stored (``records/<stem>.adversarial.safetensors``): nothing is attacked again. B embeds
A's adversarial input (the reference, x0, x1 or the stacked triplet, as the run's ``--perturb`` says) and keeps
its own clean embeddings of the other images. A triplet A never perturbed (initially wrong for A, or proven
robust) is scored on its clean images. B = A gives back A's own robust score (the diagonal).

A diagnostic: one row per (source A, triplet) goes to ``transfer_triplets.csv``, and the report layer draws
the matrix (``transfer.csv``, ``transfer.md``, ``transfer.png``) rather than adding metrics x metrics cells to
the score table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lipsim_bench.attacks.base import ThreatModel
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.adversarial import by_position
from lipsim_bench.evaluations.base import Context, EmbeddedBatch, Evaluation, Kind, PassCost, UnitRef, empty_rows
from lipsim_bench.evaluations.decided import as_bool
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.evaluations.twoafc import TwoAFCClassifier, distances_from_logits, twoafc_agreement
from lipsim_bench.metrics import PerceptualMetric

#: The run-folder CSV of the per-(source, triplet) rows; the report layer writes the matrix beside it.
TRANSFER_TRIPLETS = "transfer_triplets.csv"
#: A unit of the run as ``Context.inputs`` names it: (metric, evaluation column, threat model).
Address = tuple[str, str, Any]


@dataclass(frozen=True)
class TransferOptions:
    attack: str = "apgd"  # the attack evaluation whose stored examples are scored (it must be in the run)


@register_evaluation
class Transfer(Evaluation):
    """2AFC agreement of this metric on the adversarial examples the attack crafted on each metric of the run."""

    name = "transfer"
    kind = Kind.DIAGNOSTIC
    reads_artifacts = True
    Options = TransferOptions
    output_csv = TRANSFER_TRIPLETS
    figures = ("lipsim_bench.report.transfer:write_transfer",)  # the matrix, its table and heatmap
    description = "2AFC score on the stored adversarial examples of every metric's attack (transfer matrix)"

    def depends_on(self, metric: str, threat: ThreatModel | None, run: tuple[UnitRef, ...]) -> list[UnitRef]:
        """Every attack unit of the run: each metric's at every radius (a carried flip's example is in the unit of
        the smaller radius that found it). One transfer unit per metric, not per radius: a diagnostic's records are
        told apart by metric and setting only, and scoring stored examples costs forward passes alone."""
        attacks = [r for r in run if r.evaluation.name == self.options.attack and r.threat is not None]
        if attacks and not attacks[0].evaluation.artifacts:
            raise BenchError(
                f"transfer.attack names {self.options.attack!r}, which crafts no adversarial examples; name an attack "
                "of the run (--set transfer.attack=apgd, square, ...)"
            )
        if not attacks:
            raise BenchError(
                f"transfer scores the stored examples of the attack {self.options.attack!r}, which this run does not "
                f"compute; add it to --evaluations (e.g. --evaluations natural,{self.options.attack},transfer) "
                "or name another with --set transfer.attack=NAME"
            )
        cascaded = next((r for r in attacks if str(getattr(r.evaluation.options, "after", "") or "")), None)
        if cascaded is not None:
            raise BenchError(
                f"transfer.attack {self.options.attack!r} runs after other attacks ({cascaded.evaluation.name}.after="
                f"{cascaded.evaluation.options.after}): the examples of the flips it takes from them are in their files; "
                "name the first attack of the cascade (--set transfer.attack=NAME)"
            )
        self._units = len(attacks)  # for flops: one forward per attack unit and triplet
        return attacks

    def flops(self, cost: PassCost, n_triplets: int, threat: ThreatModel | None, attacked: float = 1.0) -> float:
        return n_triplets * (3 + getattr(self, "_units", 1)) * cost.forward

    def score(self, rows: pd.DataFrame, split: str) -> list[dict[str, Any]]:
        return []  # no cell in the score table: the report layer draws the matrix from the rows

    def run(self, metric: PerceptualMetric, batches: Iterable[EmbeddedBatch], ctx: Context) -> pd.DataFrame:
        if ctx.load_artifacts is None:
            raise BenchError(
                "transfer reads the adversarial examples the attack units store beside their records, which needs a "
                "run folder: give --out (or out= to bench.evaluate)"
            )
        items = list(batches)  # one pass per (source, norm): its examples are loaded once, then freed
        parts = []
        for source, radii in _sources(ctx, self.options.attack):
            origins = [_origin_rows(ctx.inputs[address], source, address) for address in radii]
            examples = [_examples(ctx, address, source) for address in radii]
            for level, address in enumerate(radii):  # the radius, then the smaller ones its flips were carried from
                threat = address[2]
                parts += [
                    self._batch(metric, item, ctx, source, threat, origins[level:], examples[level:]) for item in items
                ]
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()

    def _batch(
        self,
        metric: PerceptualMetric,
        item: EmbeddedBatch,
        ctx: Context,
        source: str,
        threat: ThreatModel,
        origins: list[pd.DataFrame],
        examples: list[dict[int, Tensor] | None],
    ) -> pd.DataFrame:
        """Rows of one batch scored on ``source``'s examples: each group of examples from one unit embedded together
        (the attack's own batch, so B = A gives back A's distances exactly)."""
        positions = item.batch["index"].numpy()
        _check_ids(origins[0], item, source)
        origin = np.full(len(positions), -1)
        pending = np.ones(len(positions), dtype=bool)
        for level, rows in enumerate(origins):
            attacked = as_bool(rows["attacked"])[positions]
            origin[pending & attacked] = level
            pending &= as_bool(rows["carried"])[positions]
        if pending.any():
            raise BenchError(
                f"transfer: the {self.options.attack} rows of {source!r} carry a flip of triplet "
                f"{item.batch['id'][int(pending.nonzero()[0][0])]} from a radius this run does not hold; "
                "delete the run folder's records and rerun"
            )
        d0, d1 = item.d0.clone(), item.d1.clone()
        for level in sorted(set(origin.tolist()) - {-1}):
            idx = torch.from_numpy((origin == level).nonzero()[0])
            stored = examples[level]
            wanted = [int(p) for p in positions[idx.numpy()]]
            missing = [p for p in wanted if stored is None or p not in stored]
            if missing:
                raise BenchError(
                    f"transfer: the stored {self.options.attack} examples of {source!r} lack triplet at position "
                    f"{missing[0]}; delete records/*.adversarial.safetensors and rerun the same command"
                )
            assert stored is not None
            x_adv = torch.stack([stored[p] for p in wanted]).to(ctx.device)
            # the attack's own classifier: B embeds the perturbed input, its clean embeddings hold the other images
            target = {} if ctx.perturb == "ref" else {"e_ref": item.e_ref[idx].to(ctx.device), "perturb": ctx.perturb}
            classifier = TwoAFCClassifier(
                metric, item.e0[idx].to(ctx.device), item.e1[idx].to(ctx.device), ctx.metric_name, **target
            )
            with torch.no_grad():
                adv0, adv1 = distances_from_logits(classifier(x_adv).cpu())
            d0[idx], d1[idx] = adv0.to(d0.dtype), adv1.to(d1.dtype)
        rows = item.rows(self.name, threat.norm, threat.eps, twoafc_agreement(d0, d1, item.p), d0=d0, d1=d1)
        return rows.assign(source=source, attack=self.options.attack, perturbed=origin >= 0)


def _sources(ctx: Context, attack: str) -> list[tuple[str, list[Address]]]:
    """Per source metric and norm, the addresses of its attack units with rows (one that did not apply has none),
    largest radius first: a flip carried at a radius comes from the next smaller one of its norm."""
    groups: dict[tuple[str, str], list[Address]] = {}
    for address in ctx.inputs:
        if address[1] == attack and address[2] is not None:
            groups.setdefault((address[0], address[2].norm), []).append(address)
    return [(source, sorted(radii, key=lambda a: -a[2].eps)) for (source, _), radii in groups.items()]


def _origin_rows(rows: pd.DataFrame, source: str, address: Address) -> pd.DataFrame:
    missing = [c for c in ("id", "attacked", "carried") if c not in rows.columns]
    if missing:
        raise BenchError(
            f"transfer: the stored {address[1]} rows of {source!r} lack {', '.join(missing)}; "
            "delete that record (or the run folder) and rerun"
        )
    return rows.reset_index(drop=True)


def _check_ids(rows: pd.DataFrame, item: EmbeddedBatch, source: str) -> None:
    positions = item.batch["index"].numpy()
    ids = rows["id"].astype(str).to_numpy()
    if positions.size and (positions.max() >= len(ids) or list(ids[positions]) != [str(i) for i in item.batch["id"]]):
        raise BenchError(
            f"transfer: the attack rows of {source!r} are for other triplets; delete the run folder's records and rerun"
        )


def _examples(ctx: Context, address: Address, source: str) -> dict[int, Tensor] | None:
    """The stored examples of one source unit by dataset position (None: it stored none, e.g. nothing attacked)."""
    assert ctx.load_artifacts is not None
    tensors = ctx.load_artifacts(address)
    if tensors is None:
        rows = ctx.inputs[address]
        if as_bool(rows["attacked"]).any():
            _, attack, threat = address
            raise BenchError(
                f"transfer: the {attack} unit of {source!r} at {threat.norm} {threat.eps:g} stored no adversarial "
                "examples; rerun the same command (units whose examples a transfer reads keep them)"
            )
        return None
    if "position" not in tensors or "x_adv" not in tensors:
        raise BenchError(
            f"transfer: the stored examples of {source!r} lack position/x_adv; delete records/*.adversarial.safetensors "
            "and rerun"
        )
    return by_position(tensors)
