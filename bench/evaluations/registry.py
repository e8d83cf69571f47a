"""The evaluation registry: built-in kinds, entry points (``lipsim_bench.evaluations``), ``--plugin``
files, and one attack evaluation for every registered attack (derived on each read, so an attack
loaded from a plugin gets its evaluation with no other file touched)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from lipsim_bench.errors import BenchError
from lipsim_bench.registry import Registry, describe

if TYPE_CHECKING:
    from lipsim_bench.evaluations.base import Evaluation

E = TypeVar("E", bound=type)


def _attack_evaluations() -> dict[str, type]:
    from lipsim_bench.attacks import ATTACKS
    from lipsim_bench.evaluations.attack import attack_evaluation

    return {name: attack_evaluation(name, cls) for name, cls in ATTACKS.items()}


EVALUATIONS: Registry[type[Evaluation]] = Registry(
    "evaluation",
    builtins=("lipsim_bench.evaluations.*",),  # every module of the folder: a new evaluation is a new file
    error=BenchError,
    derived=_attack_evaluations,
)


def _reserve_evaluation_names() -> None:
    """An attack becomes the evaluation of its name: a plugin attack may not take an evaluation's name."""
    from lipsim_bench.attacks import ATTACKS

    ATTACKS.reserve("evaluation", EVALUATIONS.own)  # type: ignore[arg-type]


_reserve_evaluation_names()


def register_evaluation(cls: E) -> E:
    """Class decorator: register an :class:`Evaluation` subclass under its ``name``."""
    from lipsim_bench.evaluations.base import Evaluation, Kind

    if not (isinstance(cls, type) and issubclass(cls, Evaluation)):
        raise BenchError(f"@register_evaluation takes an Evaluation subclass, got {cls!r}")
    if not isinstance(getattr(cls, "name", None), str) or not isinstance(getattr(cls, "kind", None), Kind):
        raise BenchError(
            f"evaluation class {cls.__name__} needs a `name` (str) and a `kind` (lipsim_bench.evaluations.Kind)"
        )
    _check_evaluation_class(cls)
    EVALUATIONS.add(cls.name, cls)
    return cls


def _check_evaluation_class(cls: type[Evaluation]) -> None:
    """What a run would trip over later (``list``, a run without ``--set``, the first batch), refused at registration."""
    import dataclasses

    from lipsim_bench.evaluations.base import Evaluation
    from lipsim_bench.evaluations.options import option_fields

    where = f"evaluation {cls.name!r} ({describe(cls)})"
    if getattr(cls, "run", None) is Evaluation.run:
        raise BenchError(f"{where} does not define run(metric, batches, ctx); implement it (see docs/plugins.md)")
    options = cls.Options
    if not (isinstance(options, type) and dataclasses.is_dataclass(options)):
        raise BenchError(
            f"{where}: Options must be a dataclass, e.g. @dataclass(frozen=True) class Options: steps: int = 10"
        )
    missing = [
        f.name
        for f in dataclasses.fields(options)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise BenchError(
            f"{where}: option {missing[0]!r} has no default; give every option a default (used when --set does not give it)"
        )
    try:
        known = option_fields(options)
    except Exception as exc:  # an annotation that does not resolve
        raise BenchError(
            f"{where}: its Options' type hints do not resolve ({type(exc).__name__}: {exc}); fix them"
        ) from None
    stray = [name for name in cls.sweeps if name not in known]
    if stray:
        raise BenchError(
            f"{where}: sweeps names {stray[0]!r}, which is not one of its options ({', '.join(known) or 'none'})"
        )


def get_evaluation(name: str) -> type[Evaluation]:
    return EVALUATIONS.get(name)


def list_evaluations() -> list[str]:
    return EVALUATIONS.names()
