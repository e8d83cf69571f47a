"""Attack evaluations: one per registered attack, on the reference of every initially correct triplet.

The options of ``apgd`` are the keyword arguments of :class:`attacks.APGD` (steps, restarts, loss,
rho, momentum, early_stop, ...), read from its signature, so ``--set apgd.rho=0.5`` needs no new
code; the run's seed is passed as the attack's seed. The unit key holds ``attack.config()``: every
hyperparameter, defaults resolved. Every flip is checked against the metric's certified radius.

Two options skip work whose outcome is already decided (:mod:`lipsim_bench.evaluations.decided`):
``carry`` (a flip found at a smaller radius of the same norm is inside this ball: counted, not
searched again; ``--set apgd.carry=false`` restores the paper's independent radii) and
``skip_proven`` (a triplet inside the certified radius of a bound the project computed cannot be
flipped: robust by proof; ``--verify`` attacks it anyway and checks the certificate).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Iterable
from functools import cache
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from lipsim_bench.attacks.base import Attack, DrawRows, ThreatModel
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.adversarial import ADVERSARIAL, AdversarialExamples
from lipsim_bench.evaluations.base import Context, EmbeddedBatch, Evaluation, Kind, PassCost, UnitRef, empty_rows
from lipsim_bench.evaluations.bound_checks import checked_bound
from lipsim_bench.evaluations.decided import CarriedFlips, proven_robust, work_notes
from lipsim_bench.evaluations.grad_health import GradHealth, grad_notes
from lipsim_bench.evaluations.options import options_dict
from lipsim_bench.evaluations.radii import certified_radius
from lipsim_bench.evaluations.targets import target_input
from lipsim_bench.evaluations.twoafc import (
    TwoAFCClassifier,
    distances_from_logits,
    is_correct,
    twoafc_agreement,
    twoafc_labels,
)
from lipsim_bench.metrics import PerceptualMetric, bound_proven_by_project, declares_bound

#: Set by the run, not an option: the seed of the run, and the threat model of the unit.
NOT_OPTIONS = ("self", "norm", "eps", "seed")
#: Defaults the benchmark uses where the attack's own differ: early stop drops fooled triplets from
#: the batch (the same robust score, less work).
BENCH_DEFAULTS: dict[str, Any] = {"early_stop": True}
#: Options of every attack evaluation that are the benchmark's, not the attack's (never passed to it).
BENCH_OPTIONS: tuple[tuple[str, type, object], ...] = (
    ("carry", bool, True),
    ("skip_proven", bool, True),
    ("after", str, ""),  # attacks of the run whose flips at this radius count as found (AutoAttack's cascade)
)


def _options_class(name: str, attack_cls: type[Attack]) -> type:
    """A frozen dataclass of the attack's keyword arguments (names, types and defaults from its signature)."""
    signature = inspect.signature(attack_cls.__init__)
    try:
        hints = typing.get_type_hints(attack_cls.__init__)
    except Exception:
        hints = {}
    fields = []
    for param in signature.parameters.values():
        if param.name in NOT_OPTIONS or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = BENCH_DEFAULTS.get(param.name, param.default)
        if default is inspect.Parameter.empty:
            continue  # a required argument other than norm/eps: the attack cannot be built generically
        fields.append((param.name, hints.get(param.name, Any), dataclasses.field(default=default)))
    taken = {f[0] for f in fields}
    fields += [
        (name, kind, dataclasses.field(default=default)) for name, kind, default in BENCH_OPTIONS if name not in taken
    ]
    return dataclasses.make_dataclass(f"{attack_cls.__name__}Options", fields, frozen=True)


class AttackEvaluation(Evaluation):
    """Robust 2AFC score under one attack, one unit per threat model."""

    kind = Kind.ATTACK
    per_threat = True
    artifacts = (ADVERSARIAL,)
    batch_dependent = True  # random starts are drawn per batch
    attack_cls: type[Attack]

    def attack_options(self) -> dict[str, Any]:
        """The options that are the attack's keyword arguments (not carry / skip_proven)."""
        bench_only = {name for name, _, _ in BENCH_OPTIONS} - set(
            inspect.signature(self.attack_cls.__init__).parameters
        )
        return {k: v for k, v in options_dict(self.options).items() if k not in bench_only}

    def build(self, threat: ThreatModel, seed: int) -> Attack:
        values = self.attack_options()
        if "seed" in inspect.signature(self.attack_cls.__init__).parameters:
            values["seed"] = seed
        try:
            return self.attack_cls(norm=threat.norm, eps=threat.eps, **values)
        except (TypeError, ValueError) as exc:
            raise BenchError(
                f"attack {self.name!r} rejects its options ({exc}); see `python run_bench.py list`"
            ) from None

    def resolved(self, threat: ThreatModel | None, seed: int) -> dict[str, Any]:
        own = {name: getattr(self.options, name) for name, _, _ in BENCH_OPTIONS}
        if not own.get("after"):
            own.pop("after", None)  # an attack run on its own: keyed (and labelled) as before the option existed
        if threat is None:
            values = options_dict(self.options)
            return {k: v for k, v in values.items() if k != "after" or v}
        return {**{k: v for k, v in self.build(threat, seed).config().items() if k not in ("norm", "eps")}, **own}

    def builds_on(self, threat: ThreatModel | None, threats: tuple[ThreatModel, ...]) -> ThreatModel | None:
        """With ``carry``: the next smaller radius of the same norm (its flips lie inside this ball)."""
        if threat is None or not getattr(self.options, "carry", False):
            return None
        smaller = [t for t in threats if t.norm == threat.norm and t.eps < threat.eps]
        return max(smaller, key=lambda t: t.eps) if smaller else None

    def budget(self) -> int:
        """Passes per attacked triplet without early stopping: its steps (or queries), plus the pass at the start
        of each run (APGD's first gradient, Square's first query), times its restarts."""
        values = options_dict(self.options)
        per_run = next((int(values[k]) for k in ("steps", "n_queries") if k in values), 1)
        return (per_run + 1) * int(values.get("restarts", 1))

    def flops(self, cost: PassCost, n_triplets: int, threat: ThreatModel | None, attacked: float = 1.0) -> float:
        # clean embeddings (x0/x1 then held fixed), the attack's passes on the triplets left (forward only for an
        # attack that takes no gradients: Square's queries), one final forward
        step = cost.forward_backward if self.attack_cls.uses_gradients else cost.forward
        return n_triplets * (3 * cost.forward + attacked * self.budget() * step + cost.forward)

    def run(self, metric: PerceptualMetric, batches: Iterable[EmbeddedBatch], ctx: Context) -> pd.DataFrame:
        assert ctx.threat is not None, "attack units are per threat model"
        attack = self.build(ctx.threat, ctx.seed)
        carried = carried_flips(ctx, self.after())
        prove = bool(getattr(self.options, "skip_proven", False)) and bound_proven_by_project(metric)
        kept = AdversarialExamples() if ctx.artifacts is not None else None
        parts = [self._batch(metric, attack, item, ctx, carried, prove, kept) for item in batches]
        if kept is not None and ctx.artifacts is not None:
            ctx.artifacts(ADVERSARIAL, kept.tensors())
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()

    def after(self) -> tuple[str, ...]:
        """The attacks whose flips at the same radius this one takes as found (option ``after``: a cascade)."""
        return tuple(name for name in (t.strip() for t in str(getattr(self.options, "after", "")).split(",")) if name)

    def depends_on(self, metric: str, threat: ThreatModel | None, run: tuple[UnitRef, ...]) -> list[UnitRef]:
        """With ``after``: the units of those attacks on the same metric and threat model (run first)."""
        found = []
        for name in self.after():
            match = [r for r in run if r.metric == metric and r.threat == threat and r.evaluation.column == name]
            if not match or match[0].evaluation.kind is not Kind.ATTACK or name == self.column:
                raise BenchError(
                    f"{self.name}.after names {name!r}, which is not another attack of this run; "
                    "name attacks given in --evaluations (e.g. --set square.after=apgd,fmn)"
                )
            found.append(match[0])
        return found

    def notes(self, metric_name: str, rows: pd.DataFrame) -> list[str]:
        lines = work_notes(metric_name, self.name, rows)
        if self.after():
            lines = [line.replace("from the smaller radius", f"from the smaller radius or {', '.join(self.after())}")
                     for line in lines]  # fmt: skip
        return lines + grad_notes(metric_name, self.name, rows)

    def _batch(
        self,
        metric: PerceptualMetric,
        attack: Attack,
        item: EmbeddedBatch,
        ctx: Context,
        carried_flips: CarriedFlips | None,
        prove: bool,
        kept: AdversarialExamples | None = None,
    ) -> pd.DataFrame:
        """Attack the correct triplets of one batch that are not decided yet; rows carry the adversarial distances."""
        norm, device, p = attack.norm, ctx.device, item.p
        correct = item.correct  # p == 0.5 is never "correct": nothing to flip
        d0, d1 = item.d0.clone(), item.d1.clone()
        delta_norm = torch.zeros(len(p), dtype=torch.float64)
        delta_l2 = torch.zeros(len(p), dtype=torch.float64)  # also for l-inf flips: checked against the l2 certificate
        carried = torch.zeros(len(p), dtype=torch.bool)
        if carried_flips is not None:
            carried = correct & carried_flips.apply(item, d0, d1, delta_norm, delta_l2)
        proven = (
            ~carried & correct & proven_robust(metric, item, norm, attack.eps, ctx.metric_name, ctx.perturb)
            if prove
            else torch.zeros_like(carried)
        )
        attacked = correct & ~carried & ~proven
        idx = attacked.nonzero().flatten()
        health = GradHealth(len(p))  # counts every input gradient the attack takes, per triplet of the batch
        if idx.numel():
            # the attacked input: the reference (the paper's protocol), x0, x1, or the stacked triplet
            ref = target_input(*(item.batch[k][idx] for k in ("ref", "x0", "x1")), ctx.perturb).to(device)
            classifier = TwoAFCClassifier(
                metric,
                item.e0[idx].to(device),
                item.e1[idx].to(device),
                ctx.metric_name,
                health.restrict(idx),
                e_ref=item.e_ref[idx].to(device),
                perturb=ctx.perturb,
            )
            # each undecided triplet takes the random start it would take among all correct ones
            rows = DrawRows(attacked[correct].nonzero().flatten(), int(correct.sum()))
            x_adv = run_attack(attack, classifier, ref, twoafc_labels(p[idx]).to(device), ctx.metric_name, rows)
            with torch.no_grad():
                adv0, adv1 = distances_from_logits(classifier(x_adv).cpu())
            d0[idx], d1[idx] = adv0.to(d0.dtype), adv1.to(d1.dtype)
            if kept is not None:
                kept.add(item.batch["index"][idx.cpu()], x_adv)
            delta = (x_adv - ref).flatten(1)
            delta_norm[idx] = (delta.norm(dim=1) if norm == "l2" else delta.abs().amax(dim=1)).double().cpu()
            delta_l2[idx] = delta.double().norm(dim=1).cpu()
        flipped = correct & ~is_correct(d0, d1, p)
        check_certificate(
            metric, item, flipped, norm, delta_norm, ctx.metric_name, perturb=ctx.perturb, delta_l2=delta_l2
        )
        rows = item.rows(
            self.name,
            norm,
            attack.eps,
            twoafc_agreement(d0, d1, p),
            d0=d0,
            d1=d1,
            delta_norm=delta_norm,
            delta_l2=delta_l2,
            flipped=flipped,
        )
        return rows.assign(
            attacked=attacked.numpy(), carried=carried.numpy(), proven=proven.numpy(), **health.columns()
        )


def carried_flips(ctx: Context, after: tuple[str, ...]) -> CarriedFlips | None:
    """The flips a unit takes as found: the smaller radius's (``carry``), then those of the attacks it runs
    ``after`` at this radius, in that order (a triplet takes the first one's adversarial distances)."""
    found = [CarriedFlips.from_rows(ctx.prior, ctx.metric_name)] if ctx.prior is not None else []
    for name in after:
        rows = ctx.inputs.get((ctx.metric_name, name, ctx.threat))
        if rows is not None:
            found.append(CarriedFlips.from_rows(rows, ctx.metric_name))
    if not found:
        return None
    merged = found[0]
    for other in found[1:]:
        merged = merged.or_else(other)
    return merged


def run_attack(
    attack: Attack,
    classifier: TwoAFCClassifier,
    ref: Tensor,
    labels: Tensor,
    metric_name: str,
    rows: DrawRows | None = None,
) -> Tensor:
    """``attack(classifier, ref, labels)``, its output checked (||delta|| <= eps, [0, 1], finite, shape);
    whatever an attack plugin raises or returns wrong is one line naming the attack. ``rows`` aligns the
    attack's random draws with the whole set (for attacks whose call takes them)."""
    try:
        if rows is not None and _takes_rows(attack):
            return attack(classifier, ref, labels, rows=rows)
        return attack(classifier, ref, labels)
    except BenchError as exc:
        raise BenchError(f"attack {attack.name!r} on metric {metric_name!r}: {exc}") from None
    except (RuntimeError, ValueError, TypeError, AttributeError, IndexError) as exc:
        if "out of memory" in str(exc):
            raise
        raise BenchError(
            f"attack {attack.name!r} on metric {metric_name!r} failed ({type(exc).__name__}: {exc}); fix the attack"
        ) from None


def _takes_rows(attack: Attack) -> bool:
    try:
        return "rows" in inspect.signature(attack.__call__).parameters
    except (TypeError, ValueError):
        return False


def check_certificate(
    metric: PerceptualMetric,
    item: EmbeddedBatch,
    flipped: Tensor,
    norm: str,
    delta_norm: Tensor,
    metric_name: str = "",
    *,
    perturb: str = "ref",
    delta_l2: Tensor | None = None,
) -> None:
    """Every flip is an empirical radius (the l2 norm of its perturbation of ``perturb``) that must not be below
    the certified one; an l-inf flip is checked through its l2 norm ``delta_l2`` (unchecked without it).

    A flip inside a certified l2 radius means a broken certificate or attack: never a number.
    """
    l2 = delta_norm if norm == "l2" else delta_l2
    if l2 is None or not declares_bound(metric) or not flipped.any():
        return
    lipschitz = checked_bound(metric, item, metric_name or type(metric).__name__)
    radius = certified_radius(metric.distance_kind, item.e_ref, item.e0, item.e1, lipschitz, perturb)
    violated = flipped & (radius > l2.double() * (1 + 1e-6) + 1e-9)  # NaN (an l2 norm not stored) never violates
    if violated.any():
        i = int(violated.nonzero()[0])
        raise BenchError(
            f"certificate violated: triplet {item.batch['id'][i]} was flipped ({norm} attack on {perturb}) by a "
            f"perturbation of l2 norm {float(l2[i]):.6g} inside its certified radius {float(radius[i]):.6g}; "
            "the Lipschitz bound of this metric is wrong"
        )


@cache
def attack_evaluation(name: str, attack_cls: type[Attack]) -> type[AttackEvaluation]:
    """The evaluation class of a registered attack (one class per attack, made once)."""
    doc = (attack_cls.__doc__ or "").strip().splitlines()
    return type(
        f"{attack_cls.__name__}Evaluation",
        (AttackEvaluation,),
        {
            "name": name,
            "attack_cls": attack_cls,
            "Options": _options_class(name, attack_cls),
            "description": f"robust 2AFC score under {name}" + (f": {doc[0]}" if doc else ""),
            "__module__": __name__,
        },
    )
