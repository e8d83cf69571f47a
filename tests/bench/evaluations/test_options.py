"""Evaluation options: typed coercion of --set values, complete keys from resolved options."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lipsim_bench.attacks.base import ThreatModel
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import Kind, get_evaluation
from lipsim_bench.evaluations.options import build_options, parse_set


@dataclass(frozen=True)
class Toy:
    steps: int = 3
    eps: tuple[float, ...] = (0.5,)
    rate: float | None = None
    flag: bool = False


def test_text_values_are_coerced_by_field_type() -> None:
    opts = build_options(Toy, "toy", {"steps": "7", "eps": "36/255,1", "rate": "none", "flag": "true"})
    assert opts == Toy(steps=7, eps=(36 / 255, 1.0), rate=None, flag=True)
    assert build_options(Toy, "toy", {"rate": "0.25"}).rate == 0.25


@pytest.mark.parametrize(
    "values, message",
    [
        ({"steps": "2.5"}, "toy.steps: '2.5' is not an integer"),
        ({"steps": True}, "is not an integer"),
        ({"eps": "a,b"}, "toy.eps: 'a' is not a number"),
        ({"eps": "inf"}, "not a finite number"),
        ({"flag": "maybe"}, "not a boolean"),
        ({"nope": 1}, "has no option 'nope'; its options: steps, eps, rate, flag"),
    ],
)
def test_bad_values_are_one_clear_error(values: dict, message: str) -> None:
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_options(Toy, "toy", values)


def test_parse_set() -> None:
    assert parse_set("apgd.steps=50") == ("apgd", "steps", "50")
    assert parse_set("torchattacks-apgd.rho = 0.5") == ("torchattacks-apgd", "rho", "0.5")
    for bad in ("apgd.steps", "steps=3", ".steps=3"):
        with pytest.raises(BenchError, match="NAME.OPTION=VALUE"):
            parse_set(bad)


def test_attack_options_come_from_the_attack_signature_and_resolve_to_its_config() -> None:
    apgd = get_evaluation("apgd")
    assert apgd.kind is Kind.ATTACK and apgd.per_threat and apgd.batch_dependent
    fields = apgd.Options()
    assert (fields.steps, fields.loss, fields.rho, fields.momentum, fields.early_stop) == (100, "ce", 0.75, 0.75, True)
    resolved = apgd(build_options(apgd.Options, "apgd", {"rho": "0.5"})).resolved(ThreatModel("l2", 1.0), seed=3)
    assert resolved == {
        "attack": "apgd",
        "steps": 100,
        "restarts": 1,
        "loss": "ce",
        "rho": 0.5,
        "seed": 3,
        "momentum": 0.75,
        "early_stop": True,
        "carry": True,
        "skip_proven": True,
    }
    pgd = get_evaluation("pgd")
    assert pgd(pgd.Options()).resolved(ThreatModel("l2", 1.0), seed=0)["step_size"] == pytest.approx(
        0.025
    )  # the resolved default


def test_every_builtin_declares_its_kind() -> None:
    kinds = {name: get_evaluation(name).kind for name in ("natural", "certified", "direct", "apgd", "pgd", "fmn")}
    assert kinds == {
        "natural": Kind.CLEAN,
        "certified": Kind.CERTIFICATE,
        "direct": Kind.DIAGNOSTIC,
        "apgd": Kind.ATTACK,
        "pgd": Kind.ATTACK,
        "fmn": Kind.ATTACK,
    }


@dataclass(frozen=True)
class Several:
    radii: tuple[float, ...] | None = None
    steps: int = 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"steps": None}, "toy.steps: None is not an integer"),
        ({"steps": [1, 2]}, "toy.steps: [1, 2] is several values, but it takes one"),
        ({"rate": (0.1, 0.2)}, "toy.rate: (0.1, 0.2) is several values, but it takes one"),
        ({"flag": [True]}, "toy.flag: [True] is several values"),
    ],
)
def test_python_values_of_the_wrong_shape_are_one_line(values: dict, message: str) -> None:
    """The Python API hands typed values: None or a list where one number goes was a bare TypeError."""
    with pytest.raises(BenchError) as caught:
        build_options(Toy, "toy", values)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value), str(caught.value)


def test_a_tuple_option_still_takes_a_list_also_inside_optional() -> None:
    assert build_options(Toy, "toy", {"eps": [0.25, 0.5]}).eps == (0.25, 0.5)
    assert build_options(Several, "several", {"radii": [1, 2]}).radii == (1.0, 2.0)
    assert build_options(Several, "several", {"radii": None}).radii is None
