"""Units and their complete keys: what a run computes, planned before anything is built.

A unit is (metric, evaluation, threat model); its key holds every value that changes its numbers,
resolved: the seed, the weights' fingerprint and the adapter's source hash, the data's content
(each image's sha256, not its path), the threat model, the evaluation's version, source hash (its
class and, for an attack, the attack class, with the project and plugin code they use) and resolved
options (for an attack, ``attack.config()``), the torch version and the device type (random streams
differ between CPU and CUDA), and the batch size where random draws are made per batch. Not in the
key: the run folder, the other metrics of the run, their order. The dry run plans with the same
code, and never imports the unit loop.
"""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lipsim_bench.attacks.base import ThreatModel
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import Evaluation, UnitRef
from lipsim_bench.locations import env_switch
from lipsim_bench.metrics import PerceptualMetric, create_metric, get_metric_spec
from lipsim_bench.metrics.fingerprint import code_fingerprint
from lipsim_bench.metrics.precision import with_precision
from lipsim_bench.run.records import Unit
from lipsim_bench.run.seeds import run_seeds, uses_seed
from lipsim_bench.run.spec import ResolvedRun, RunSpec

#: Test-only switch: build every metric that can with random weights (``pretrained=False``), so the
#: whole protocol runs offline on real architectures. Results say so in their key and records.
RANDOM_WEIGHTS_ENV = "LIPSIM_BENCH_RANDOM_WEIGHTS"


def random_weights_requested() -> bool:
    return env_switch(RANDOM_WEIGHTS_ENV)  # 1/0, true/false, yes/no, on/off; any other spelling is one error


def _takes_pretrained(name: str) -> bool:
    return "pretrained" in inspect.signature(get_metric_spec(name).factory).parameters


#: What a metric built with random weights is called in every output (units, records, tables, run.log),
#: so it can never be mistaken for the published metric.
RANDOM_WEIGHTS_LABEL = "{name} (random weights)"


def random_weights_apply(name: str) -> bool:
    """Whether this run builds ``name`` with random weights (the switch is on and it takes ``pretrained``)."""
    return random_weights_requested() and _takes_pretrained(name)


def metric_label(name: str) -> str:
    """The metric's name in this run's outputs: the registry name, or marked as randomly initialised."""
    return RANDOM_WEIGHTS_LABEL.format(name=name) if random_weights_apply(name) else name


def random_weights_note(name: str) -> str:
    """The table footer's word on a randomly initialised metric."""
    return (
        f"{metric_label(name)}: randomly initialised ({RANDOM_WEIGHTS_ENV}=1, a test switch), "
        f"not the published {name}; its numbers say nothing about {name}"
    )


def metric_weights_id(name: str, seed: int) -> str:
    """What identifies the weights of ``name`` in this run."""
    if random_weights_apply(name):
        return f"random-init(seed={seed})"
    return get_metric_spec(name).weights_id()


def metric_conventions(name: str) -> dict[str, str | bool | None]:
    """What a record stores about the metric's conventions (``MetricSpec.conventions_record``): text about the
    adapter's code, whose source hash is already in the key, so not part of the key itself. A metric built with
    random weights says so in place of the published weights' description."""
    record = get_metric_spec(name).conventions_record()
    if random_weights_apply(name):
        record["weights"] = f"random-init ({RANDOM_WEIGHTS_ENV}=1), not {record['weights']}"
    return record


def metric_identity(name: str, seed: int, precision: str = "fp32") -> dict[str, str]:
    """The metric's part of every unit key: its weights, its adapter's source code, and the precision of
    its embeddings where one other than fp32 applies (never to a metric with a Lipschitz bound)."""
    identity = {"weights": metric_weights_id(name, seed), "source": get_metric_spec(name).source_id()}
    if precision != "fp32" and get_metric_spec(name).certifiable() is not True:
        identity["precision"] = precision
    return identity


def seed_everything(seed: int) -> None:
    """Seed every generator a unit may touch, so its numbers do not depend on what ran before it."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_metric(name: str, device: torch.device, seed: int, precision: str = "fp32") -> PerceptualMetric:
    """The metric on ``device`` in ``precision`` (see :mod:`lipsim_bench.metrics.precision`); seeded, so a random
    initialisation is the same on every run and rank."""
    seed_everything(seed)
    metric = create_metric(name, pretrained=False) if random_weights_apply(name) else create_metric(name)
    return with_precision(metric.to(device), precision)


@dataclass(frozen=True)
class DataIdentity:
    """The data's part of every key: family, split, n and the content of the selected triplets."""

    family: str
    split: str
    n: int | None
    content: str


@dataclass(frozen=True)
class PlannedUnit:
    """One unit of work, keyed, with what the registry knows before the metric is built."""

    metric: str
    evaluation: Evaluation
    threat: ThreatModel | None
    unit: Unit
    applies: bool | None  # from the metric's spec: None = known once the metric is built
    position: int  # place in the run, for table order
    builds_on: Unit | None = None  # the unit whose rows this one reuses (computed first)
    depends: tuple[tuple[UnitRef, Unit], ...] = ()  # the units whose rows it reads (``Evaluation.depends_on``)
    per_seed: bool = False  # planned once per seed of ``--seeds`` (its numbers depend on the seed)

    @property
    def seed(self) -> int:
        """The seed this unit runs with (its key's): one of ``--seeds``, or the run's seed."""
        return int(self.unit.settings["seed"])

    def describe(self) -> dict[str, Any]:
        """What a record stores about its evaluation, so reports and plots never need the registry."""
        ev = self.evaluation
        return {
            "evaluation": {
                "name": ev.name,
                "kind": ev.kind.value,
                "version": ev.version,
                "output_csv": ev.output_csv,
                "figures": list(ev.figures),
                "table_rank": ev.table_rank,
                "measures": ev.measure(),
            },
            "threat": {"norm": self.threat.norm, "eps": self.threat.eps} if self.threat else None,
            "position": self.position,
        }


def device_type(device: str | None) -> str:
    """cpu, cuda or mps: what changes random streams and kernels (never the index: cuda:0 and cuda:1 agree)."""
    try:
        return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")).type
    except (RuntimeError, TypeError):
        return str(device)


def evaluation_source_id(evaluation: Evaluation) -> str:
    """The source hash of what computes an evaluation's numbers: its class and, for an attack evaluation,
    the attack class that perturbs (each with its bases and the project or plugin code it uses)."""
    classes = [type(evaluation)]
    attack = getattr(evaluation, "attack_cls", None)
    if isinstance(attack, type):
        classes.append(attack)
    return code_fingerprint(*classes)


def runtime_identity(spec: RunSpec) -> dict[str, str]:
    """What the machine contributes to every key: the torch version and the device type."""
    return {"torch": torch.__version__, "device": device_type(spec.device)}


def unit_key(
    spec: RunSpec,
    data: DataIdentity,
    metric: str,
    identity: dict[str, str],
    evaluation: Evaluation,
    threat: ThreatModel | None,
    builds_on: Unit | None = None,
    code: str | None = None,
    depends: tuple[Unit, ...] = (),
    seed: int | None = None,
) -> Unit:
    seed = spec.seed if seed is None else seed  # one of --seeds for a unit planned per seed
    settings: dict[str, Any] = {
        "seed": seed,
        "perturb": spec.perturb,  # which image(s) attacks move: every unit of another target is recomputed
        **identity,
        **runtime_identity(spec),
        "data": data.content,
        "kind": evaluation.kind.value,
        "version": evaluation.version,
        "code": code or evaluation_source_id(evaluation),
        "threat": {"norm": threat.norm, "eps": threat.eps} if threat else None,
        "options": evaluation.resolved(threat, seed),
    }
    if evaluation.batch_dependent:
        settings["batch_size"] = spec.batch_size
    if builds_on is not None:
        settings["builds_on"] = builds_on.key()  # its key holds its own predecessor's: the whole chain
    if depends:
        settings["depends_on"] = [unit.key() for unit in depends]
    return Unit(
        metric=metric_label(metric),
        dataset=data.family,
        split=data.split,
        n=data.n,
        evaluation=evaluation.name,
        settings=settings,
    )


def plan_units(
    spec: RunSpec, resolved: ResolvedRun, data: DataIdentity, identities: dict[str, dict[str, str]] | None = None
) -> list[PlannedUnit]:
    """Every unit of the run in table order: per metric, each evaluation (per threat model when it says so).

    A unit's key holds the keys of the units it builds on (smaller radii) and depends on (other evaluations or
    metrics, ``Evaluation.depends_on``), so changing any of them recomputes it. Under ``--seeds`` the units whose
    numbers depend on the seed (lipsim_bench.run.seeds) follow once per further seed, at the same position."""
    refs = tuple(
        UnitRef(metric, evaluation, threat)
        for metric in spec.metrics
        for evaluation in resolved.evaluations
        for threat in (resolved.threats if evaluation.per_threat else (None,))
    )
    codes = {id(ev): evaluation_source_id(ev) for ev in resolved.evaluations}
    metric_ids = {m: (identities or {}).get(m) or metric_identity(m, spec.seed, spec.precision) for m in spec.metrics}
    seeds = run_seeds(spec)
    seeded = {id(ev): uses_seed(ev, resolved.threats) for ev in resolved.evaluations} if len(seeds) > 1 else {}
    units: dict[tuple[UnitRef, int], Unit] = {}
    varies: dict[UnitRef, bool] = {}  # whether the unit runs once per seed (its own draws, or a unit it reads)

    def base_of(ref: UnitRef) -> UnitRef | None:
        base = ref.evaluation.builds_on(ref.threat, resolved.threats)
        if base is None:
            return None
        if base not in resolved.threats:
            raise ValueError(
                f"evaluation {ref.evaluation.name!r}: builds_on returned {base}, not a threat model of the run"
            )
        return UnitRef(ref.metric, ref.evaluation, base)

    def depends_of(ref: UnitRef) -> list[UnitRef]:
        found = ref.evaluation.depends_on(ref.metric, ref.threat, refs)
        stray = [d for d in found if d not in refs or d == ref]
        if stray:
            raise BenchError(
                f"evaluation {ref.evaluation.name!r} depends on {stray[0].evaluation.name!r} of {stray[0].metric!r}, "
                "which is not another unit of this run"
            )
        return found

    def key_of(ref: UnitRef, seed: int, chain: tuple[UnitRef, ...] = ()) -> Unit:
        """The unit of ``ref`` at ``seed`` (a unit that does not depend on the seed: at the run's first seed)."""
        if (ref, seed) in units:
            return units[ref, seed]
        if ref in chain:
            raise BenchError(
                f"evaluation {ref.evaluation.name!r}: its units depend on each other in a cycle; check the attacks' "
                "after options (--set NAME.after=...): an attack cannot run after one that runs after it"
            )
        base = base_of(ref)
        before = key_of(base, seed, chain + (ref,)) if base is not None else None
        reads = depends_of(ref)
        needed = tuple(key_of(d, seed, chain + (ref,)) for d in reads)
        varies[ref] = seeded.get(id(ref.evaluation), False) or any(varies[r] for r in reads + ([base] if base else []))
        units[ref, seed] = unit_key(
            spec, data, ref.metric, metric_ids[ref.metric], ref.evaluation, ref.threat, before,
            codes[id(ref.evaluation)], needed, seed if varies[ref] else seeds[0],
        )  # fmt: skip
        return units[ref, seed]

    applies = {
        (m, ev.name): type(ev).applies_to(get_metric_spec(m)) for m in spec.metrics for ev in resolved.evaluations
    }
    planned: list[PlannedUnit] = []
    for seed in seeds:  # the first seed's units (a --seed run's), then each further seed's seed-dependent ones
        for position, ref in enumerate(refs):
            unit = key_of(ref, seed)
            if seed != seeds[0] and not varies[ref]:
                continue  # the same unit as at the first seed: computed once
            base = base_of(ref)
            planned.append(
                PlannedUnit(
                    ref.metric,
                    ref.evaluation,
                    ref.threat,
                    unit,
                    applies[(ref.metric, ref.evaluation.name)],
                    position,
                    units[base, seed] if base is not None else None,
                    tuple((d, units[d, seed]) for d in depends_of(ref)),
                    len(seeds) > 1 and varies[ref],
                )
            )
    return planned


def execution_order(units: list[PlannedUnit]) -> list[PlannedUnit]:
    """The units in table order, except that a unit always runs after the one it builds on."""
    by_key = {u.unit.key(): u for u in units}
    done: set[str] = set()
    ordered: list[PlannedUnit] = []

    def visit(planned: PlannedUnit) -> None:
        key = planned.unit.key()
        if key in done:
            return
        done.add(key)
        for before in ([planned.builds_on] if planned.builds_on is not None else []) + [u for _, u in planned.depends]:
            if before.key() in by_key:
                visit(by_key[before.key()])
        ordered.append(planned)

    for planned in units:
        visit(planned)
    return ordered
