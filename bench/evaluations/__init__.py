"""Evaluations: one file per kind (natural, certified, one per attack, direct), all behind one protocol.

>>> from lipsim_bench.evaluations import get_evaluation, list_evaluations
>>> get_evaluation("certified").kind
<Kind.CERTIFICATE: 'certificate'>
"""

from lipsim_bench.evaluations.base import (
    POSITION,
    Context,
    EmbeddedBatch,
    Evaluation,
    Kind,
    NoOptions,
    PassCost,
    UnitRef,
)
from lipsim_bench.evaluations.registry import EVALUATIONS, get_evaluation, list_evaluations, register_evaluation

__all__ = [
    "EVALUATIONS",
    "POSITION",
    "Context",
    "EmbeddedBatch",
    "Evaluation",
    "Kind",
    "NoOptions",
    "PassCost",
    "UnitRef",
    "get_evaluation",
    "list_evaluations",
    "register_evaluation",
]
