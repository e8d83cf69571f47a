"""How much of an attack unit is actually attacked, measured once, for the dry run's attack times.

With ``carry`` (a flip at a smaller radius of the same norm is counted, not searched again) and
``skip_proven`` (a triplet inside a certified radius the project computed is robust by proof), an
attack unit runs its steps on only a fraction of the initially correct triplets.
``bench/protocol/attack_work.json`` holds that fraction, measured by ``benchmarks/attack_work.py``
on the bundled run, per class of metric (``certifiable``: a Lipschitz bound, so skip_proven can
act; ``uncertifiable``: the rest), norm and eps, for each combination of the two options:

- ``carry_and_skip``: attacked / correct, as measured (both on: the default);
- ``carry``: (attacked + proven) / correct (a proven triplet is never flipped, so without skipping it
  would be attacked and never carried);
- ``skip_proven``: (attacked + carried) / correct (without carrying, every flip is searched again).

The dry run interpolates linearly in eps between measured radii (the first / last value outside
them). The smallest radius of a norm in a run carries nothing (no smaller ball), so its units use
the ``skip_proven`` value. No file, or no entry for the norm: fraction 1, the upper bound.

Early stopping (format 2, ``steps``): an attacked triplet stops once fooled, so it takes a share of the attack's
budget (steps or queries x restarts). ``benchmarks/attack_floor.py`` counts the passes of each attack unit of the
bundled run and ``benchmarks/attack_work.py`` records, per attack evaluation, class, norm and eps, ``share`` =
passes / (attacked x budget), ``robust`` = the share of attacked triplets left unflipped, and the ``budget``
measured at. At another budget B' the fooled ones are taken to need the same passes and the robust ones all of
B': share' = robust + (share - robust) B / B', within [robust, 1]. An attack not measured counts its whole budget.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from lipsim_bench.errors import BenchError
from lipsim_bench.metrics import get_metric_spec

ATTACK_WORK = Path(__file__).with_name("attack_work.json")
FORMAT = 2
FORMATS = (1, 2)  # format 1: no ``steps`` (early stopping counted in full)
CLASSES = ("certifiable", "uncertifiable")
MODES = ("carry_and_skip", "carry", "skip_proven")
RERUN = "regenerate it with `python benchmarks/attack_work.py RUN_FOLDER`"
LABEL = "estimate: attack steps scaled by the fractions measured on the bundled run (bench/protocol/attack_work.json)"


def metric_class(metric: str) -> str:
    """``certifiable`` when runs may skip the metric's certified triplets: only bounds the project proves
    itself (a plugin's declared bound is attacked everywhere, so its work is that of an uncertifiable one)."""
    return "certifiable" if get_metric_spec(metric).skips_proven() else "uncertifiable"


def work_mode(options: Any, smallest_radius: bool) -> str | None:
    """Which measured fraction applies to a unit with these options; None: every correct triplet is attacked."""
    carry = bool(getattr(options, "carry", False)) and not smallest_radius
    skip = bool(getattr(options, "skip_proven", False))
    if carry and skip:
        return "carry_and_skip"
    return "carry" if carry else "skip_proven" if skip else None


Curve = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class StepShares:
    """Early stopping of one attack, class and norm: per eps (ascending) the share of the budget and the robust share."""

    eps: tuple[float, ...]
    share: tuple[float, ...]
    robust: tuple[float, ...]
    budget: int

    def at(self, eps: float, budget: int) -> float:
        share, robust = float(np.interp(eps, self.eps, self.share)), float(np.interp(eps, self.eps, self.robust))
        if budget == self.budget:
            return share
        return min(max(robust + (share - robust) * self.budget / budget, robust), 1.0)


@dataclass(frozen=True)
class AttackWork:
    """Measured fractions: ``curves[class][norm][mode]`` = (eps ascending, fractions); ``steps[attack][class][norm]``."""

    path: Path
    curves: dict[str, dict[str, dict[str, Curve]]]
    steps: dict[str, dict[str, dict[str, StepShares]]] = field(default_factory=dict)

    def fraction(self, metric_cls: str, norm: str, eps: float, mode: str) -> float | None:
        """The interpolated fraction; None when the class or norm was not measured."""
        curve = self.curves.get(metric_cls, {}).get(norm, {}).get(mode)
        if curve is None:
            return None
        return float(np.interp(eps, curve[0], curve[1]))  # constant beyond the measured radii

    def step_share(self, attack: str, metric_cls: str, norm: str, eps: float, budget: int) -> float | None:
        """The share of ``budget`` an attacked triplet takes under early stopping; None when not measured."""
        shares = self.steps.get(attack, {}).get(metric_cls, {}).get(norm)
        return None if shares is None else shares.at(eps, budget)


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"{where} is {value!r}, not a fraction in [0, 1]")
    return float(value)


def parse_attack_work(path: Path, data: Any) -> AttackWork:
    """The fractions of a parsed ``attack_work.json``; ValueError naming the first bad field."""
    if not isinstance(data, dict) or data.get("format") not in FORMATS:
        raise ValueError(f"not an attack-work file of format {' or '.join(map(str, FORMATS))}")
    classes = data.get("classes")
    if not isinstance(classes, dict):
        raise ValueError("classes is missing")
    curves: dict[str, dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...]]]]] = {}
    for cls, entry in classes.items():
        if cls not in CLASSES or not isinstance(entry, dict) or not isinstance(entry.get("norms"), dict):
            raise ValueError(f"class {cls!r} is not one of {', '.join(CLASSES)} with a norms object")
        for norm, points in entry["norms"].items():
            if not isinstance(points, list) or not points or not all(isinstance(p, dict) for p in points):
                raise ValueError(f"{cls} {norm}: expected a list of points")
            pairs = sorted(((_radius(p.get("eps"), f"{cls} {norm} eps"), p) for p in points), key=lambda pair: pair[0])
            eps = tuple(e for e, _ in pairs)
            if len(set(eps)) != len(eps):
                raise ValueError(f"{cls} {norm}: an eps appears twice")
            curves.setdefault(cls, {})[norm] = {
                mode: (eps, tuple(_fraction(p.get(mode), f"{cls} {norm} eps {e:g} {mode}") for e, p in pairs))
                for mode in MODES
            }
    return AttackWork(path, curves, _parse_steps(data.get("steps", {})))


def _parse_steps(data: Any) -> dict[str, dict[str, dict[str, StepShares]]]:
    """The ``steps`` object: ``{attack: {class: {norm: [{eps, share, robust, budget}, ...]}}}`` (``what``: prose)."""
    if not isinstance(data, dict):
        raise ValueError("steps is not an object")
    steps: dict[str, dict[str, dict[str, StepShares]]] = {}
    for attack, classes in data.items():
        if attack == "what":
            continue
        if not isinstance(classes, dict) or not set(classes) <= set(CLASSES):
            raise ValueError(f"steps {attack}: expected classes {', '.join(CLASSES)}")
        for cls, norms in classes.items():
            if not isinstance(norms, dict):
                raise ValueError(f"steps {attack} {cls}: expected an object of norms")
            for norm, points in norms.items():
                where = f"steps {attack} {cls} {norm}"
                if not isinstance(points, list) or not points or not all(isinstance(p, dict) for p in points):
                    raise ValueError(f"{where}: expected a list of points")
                pairs = sorted(((_radius(p.get("eps"), f"{where} eps"), p) for p in points), key=lambda pair: pair[0])
                budgets = sorted({str(p.get("budget")) for _, p in pairs})
                budget = pairs[0][1].get("budget")
                if len(budgets) > 1 or isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                    raise ValueError(f"{where}: budget must be one positive integer, got {', '.join(budgets)}")
                steps.setdefault(attack, {}).setdefault(cls, {})[norm] = StepShares(
                    tuple(e for e, _ in pairs),
                    tuple(_fraction(p.get("share"), f"{where} eps {e:g} share") for e, p in pairs),
                    tuple(_fraction(p.get("robust"), f"{where} eps {e:g} robust") for e, p in pairs),
                    budget,
                )
    return steps


def _radius(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{where} is {value!r}, not a positive radius")
    return float(value)


@cache
def _load(path: Path, mtime_ns: int) -> AttackWork:
    try:
        return parse_attack_work(path, json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BenchError(f"{path} is malformed ({exc}); {RERUN}") from None


def load_attack_work(path: Path | None = None) -> AttackWork | None:
    """The measured fractions (default: the committed file), or None when absent (then attacks count in full)."""
    path = path if path is not None else ATTACK_WORK
    if not path.is_file():
        return None
    return _load(path, path.stat().st_mtime_ns)
