"""``--seeds 0,1,2``: the units whose numbers depend on the seed run once per seed, the others once.

An attack with a random start or restarts (APGD, PGD, Square) and a smoothing certificate (its noise) give
other numbers under another seed; the natural score, a Lipschitz certificate and a deterministic attack (FMN)
do not, so they run once, at the first seed, under exactly the key a ``--seed`` run of that seed gives them.
A unit that reads other units (the worst case, transfer) runs per seed when one of them does, and reads
their units of the same seed. The report averages a cell over its seeds (``lipsim_bench.report.seeds``).
"""

from __future__ import annotations

import numbers
from typing import Any

from lipsim_bench.attacks.base import ThreatModel
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import Evaluation

#: Seeds numpy accepts (its legacy generator takes 0 .. 2**32 - 1); bench/run/spec.py checks ``--seed`` alike.
MAX_SEED = 2**32 - 1
#: Evaluations that draw from the run's seed (``Context.seed``) without it in their options: smoothing's noise.
#: A plugin says so with a class attribute ``uses_seed = True`` (or ``False`` for one that never draws);
#: these names are here, not on their classes, because editing an evaluation's source changes every stored key.
DRAWS_FROM_CONTEXT = frozenset({"smoothing", "smoothing-attack", "smoothing-embed"})


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2]: integers 0 .. 2**32 - 1, each once."""
    seeds: list[int] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        try:
            seeds.append(int(item))
        except ValueError:
            raise BenchError(f"--seeds: {item!r} is not an integer; give seeds like 0,1,2") from None
    if not seeds:
        raise BenchError(f"--seeds {text!r} names no seed; give seeds like 0,1,2")
    return check_seeds(seeds, "--seeds")


def check_seeds(value: Any, where: str = "seeds (--seeds)") -> list[int]:
    """A list of seeds from the CLI or the Python API, checked: integers in range, each once, at least one."""
    items = list(value) if isinstance(value, (list, tuple)) else None
    if items is None or not items:
        raise BenchError(f"{where} must be a non-empty list of integers, e.g. [0, 1, 2], got {value!r}")
    for seed in items:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
            raise BenchError(f"{where}: {seed!r} is not a seed; give integers from 0 to {MAX_SEED}, e.g. 0,1,2")
    twice = sorted({int(s) for s in items if items.count(s) > 1})
    if twice:
        raise BenchError(f"{where}: seed {twice[0]} is given twice; give each seed once")
    return [int(s) for s in items]


def run_seeds(spec: Any) -> tuple[int, ...]:
    """The seeds a run plans its seed-dependent units under: ``spec.seeds``, or the one ``spec.seed``."""
    seeds = getattr(spec, "seeds", None)
    return tuple(seeds) if seeds else (spec.seed,)


def uses_seed(evaluation: Evaluation, threats: tuple[ThreatModel, ...]) -> bool:
    """Whether the evaluation's own numbers change with the seed (not counting the units it reads).

    Its class's ``uses_seed`` where set; else a seed in its resolved options (an attack built with a ``seed``,
    the direct attack), or a draw from the run's seed (``DRAWS_FROM_CONTEXT``). A PGD without random start is
    counted as seeded (its attack takes a seed): an extra unit per seed, the same numbers."""
    declared = getattr(type(evaluation), "uses_seed", None)
    if isinstance(declared, bool):
        return declared
    if evaluation.name in DRAWS_FROM_CONTEXT:
        return True
    threat = threats[0] if evaluation.per_threat and threats else None
    return evaluation.resolved(threat, 0) != evaluation.resolved(threat, 1)
