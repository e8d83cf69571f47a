"""One unit's estimated seconds for the dry run, and what each estimate rests on.

Seconds come from the machine's measured images/s where ``benchmarks/profile_device.py`` measured
the metric (:mod:`.device_profile`), else from FLOPs over an assumed GPU throughput (:mod:`.cost`).
An attack unit with ``carry`` / ``skip_proven`` on runs its steps on the fraction of triplets
measured on the bundled run (:mod:`.attack_work`); without that file every triplet counts. Each
attacked triplet takes the share of its attack's budget (steps or queries x restarts) that early stopping
left on the bundled run, where that attack was measured; else its whole budget.
The estimator remembers which metrics were measured or assumed and why attacks were not scaled,
so the report can say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lipsim_bench.attacks.base import ThreatModel
from lipsim_bench.evaluations import Evaluation, Kind
from lipsim_bench.protocol.attack_work import AttackWork, metric_class, work_mode
from lipsim_bench.protocol.cost import ALIASES, DEFAULT_GPU, GpuProfile, evaluation_flops, pass_counts, seconds
from lipsim_bench.protocol.device_profile import DeviceProfile
from lipsim_bench.tasks.base import DEFAULT_TASK


@dataclass(frozen=True)
class UnitEstimate:
    """Seconds of one unit (None: the metric is neither measured nor tabled) and the attacked fraction used."""

    seconds: float | None
    attacked: float | None = None  # None: not scaled (not an attack unit with carry / skip_proven, or no data)
    steps: float | None = None  # the share of its budget an attacked triplet takes; None: the whole budget


@dataclass
class Estimator:
    """Estimates units of one run; ``threats`` are the run's (the smallest radius of a norm carries nothing)."""

    threats: tuple[ThreatModel, ...]
    profile: DeviceProfile | None = None
    work: AttackWork | None = None
    gpu: GpuProfile = DEFAULT_GPU
    measured: set[str] = field(default_factory=set)
    assumed: set[str] = field(default_factory=set)
    scaled: bool = False
    unscaled: set[str] = field(default_factory=set)  # why some attack units count every triplet
    early_stopped: set[str] = field(default_factory=set)  # attacks whose steps were scaled by early stopping
    full_budget: set[str] = field(default_factory=set)  # attacks counted with their whole budget (not measured)

    def attacked_fraction(self, metric: str, evaluation: Evaluation, threat: ThreatModel | None) -> float | None:
        """The measured fraction of triplets this attack unit attacks; None: all of them."""
        if evaluation.kind is not Kind.ATTACK or threat is None:
            return None
        if DEFAULT_TASK not in getattr(evaluation, "tasks", (DEFAULT_TASK,)):
            self.unscaled.add(f"{evaluation.name}: the attacked shares were measured on 2AFC runs only")
            return None
        smallest = not any(t.norm == threat.norm and t.eps < threat.eps for t in self.threats)
        mode = work_mode(evaluation.options, smallest)
        if mode is None:
            return None
        if self.work is None:
            self.unscaled.add("bench/protocol/attack_work.json is missing")
            return None
        cls = metric_class(metric)
        fraction = self.work.fraction(cls, threat.norm, threat.eps, mode)
        if fraction is None:
            self.unscaled.add(f"no {threat.norm} fractions for {cls} metrics in {self.work.path.name}")
            return None
        self.scaled = True
        return fraction

    def step_share(self, metric: str, evaluation: Evaluation, threat: ThreatModel | None) -> float | None:
        """The measured share of its budget an attacked triplet takes (early stopping); None: all of it."""
        budget = getattr(evaluation, "budget", None)
        if evaluation.kind is not Kind.ATTACK or threat is None or budget is None:
            return None
        named = f"{evaluation.name} ({threat.norm})"  # measured per norm: one norm may be, the other not
        if getattr(evaluation.options, "early_stop", True) is False:  # --set apgd.early_stop=false: every step
            self.full_budget.add(named)
            return None
        share = None
        if self.work is not None:
            share = self.work.step_share(evaluation.name, metric_class(metric), threat.norm, threat.eps, budget())
        (self.full_budget if share is None else self.early_stopped).add(named)
        return share

    def estimate(
        self, metric: str, evaluation: Evaluation, threat: ThreatModel | None, n_triplets: int
    ) -> UnitEstimate:
        fraction = self.attacked_fraction(metric, evaluation, threat)
        steps = self.step_share(metric, evaluation, threat)
        attacked = (1.0 if fraction is None else fraction) * (1.0 if steps is None else steps)
        rate = self.profile.rate(metric, ALIASES) if self.profile is not None else None
        if rate is not None:
            self.measured.add(metric)
            return UnitEstimate(rate.seconds(*pass_counts(evaluation, n_triplets, threat, attacked)), fraction, steps)
        estimate = seconds(evaluation_flops(metric, evaluation, n_triplets, threat, attacked), self.gpu)
        if estimate is not None:
            self.assumed.add(metric)
        return UnitEstimate(estimate, fraction, steps)
