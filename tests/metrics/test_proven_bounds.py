"""Whose Lipschitz bound is proven, and what counts as declaring one.

Only the project's own adapter classes (exactly those) have bounds the project proves: nothing a
plugin can call or apply puts a class into that set. A bound set on the class, on the instance, or
through an overridden ``lipschitz_for`` is declared alike.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import lipsim_bench.metrics as metrics
import lipsim_bench.metrics.base as base
from lipsim_bench.metrics import (
    PerceptualMetric,
    bound_proven_by_project,
    create_metric,
    declares_bound,
    register_metric,
    unregister_metric,
)
from lipsim_bench.metrics.lipsim.metric import LipSim
from lipsim_bench.metrics.pixel import PixelL2
from lipsim_bench.metrics.precision import ReducedPrecisionMetric
from lipsim_bench.metrics.registry import MetricSpec


class ClassBound(PerceptualMetric):
    lipschitz = 1.0

    def embed(self, x: Tensor) -> Tensor:
        return x.flatten(1)


class InstanceBound(PerceptualMetric):
    def __init__(self) -> None:
        super().__init__()
        self.lipschitz = 1.0

    def embed(self, x: Tensor) -> Tensor:
        return x.flatten(1)


class SizeBound(PerceptualMetric):
    def embed(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def lipschitz_for(self, height: int, width: int) -> float | None:
        return 1.0


class NoBound(PerceptualMetric):
    def embed(self, x: Tensor) -> Tensor:
        return x.flatten(1)


def test_the_project_classes_are_proven_and_nothing_else() -> None:
    assert bound_proven_by_project(create_metric("pixel-l2")) and bound_proven_by_project(create_metric("lipsim-tiny"))
    assert not bound_proven_by_project(create_metric("convsim-tiny"))
    for cls in (ClassBound, InstanceBound, SizeBound, NoBound):
        assert not bound_proven_by_project(cls())


def test_a_subclass_of_a_project_class_is_not_proven() -> None:
    """A subclass may override embed: its bound is the plugin's word, however it got there."""

    class Faster(PixelL2):
        def embed(self, x: Tensor) -> Tensor:
            return 5 * x

    class Tuned(LipSim):
        pass

    assert not bound_proven_by_project(Faster()) and not bound_proven_by_project(Tuned("tiny"))


def test_a_class_that_claims_a_project_name_is_not_proven() -> None:
    impostor = type(
        "PixelL2", (PerceptualMetric,), {"lipschitz": 0.2, "embed": lambda self, x: x, "__module__": PixelL2.__module__}
    )
    impostor.__qualname__ = "PixelL2"
    assert (impostor.__module__, impostor.__qualname__) == (PixelL2.__module__, PixelL2.__qualname__)
    assert not bound_proven_by_project(impostor())


def test_no_public_way_into_the_proven_set() -> None:
    """The old public decorator is gone, the set cannot grow, and registering and building a metric adds nothing."""
    assert not hasattr(base, "project_bound") and not hasattr(metrics, "project_bound")
    assert isinstance(base._PROVEN_BY_PROJECT, frozenset)
    with pytest.raises(AttributeError):
        base._PROVEN_BY_PROJECT.add(("tests.metrics.test_proven_bounds", "ClassBound"))  # type: ignore[attr-defined]
    before = set(base._PROVEN_BY_PROJECT)
    public = [getattr(metrics, name) for name in metrics.__all__]
    register_metric("test-would-be-proven")(ClassBound)
    try:
        built = create_metric("test-would-be-proven")
    finally:
        unregister_metric("test-would-be-proven")
    assert not bound_proven_by_project(built) and set(base._PROVEN_BY_PROJECT) == before
    assert all(not isinstance(value, (set, list, dict)) for value in public)  # no mutable registry of classes exported


def test_a_bound_on_the_class_the_instance_or_lipschitz_for_is_declared_alike() -> None:
    assert declares_bound(ClassBound()) and declares_bound(InstanceBound()) and declares_bound(SizeBound())
    assert not declares_bound(NoBound())
    assert not declares_bound(ReducedPrecisionMetric(NoBound(), "bf16"))  # the wrapper claims nothing
    x = torch.rand(2, 3, 4, 4)
    assert [m.lipschitz_for(4, 4) for m in (ClassBound(), InstanceBound(), SizeBound())] == [1.0, 1.0, 1.0]
    assert torch.equal(ClassBound().embed(x), InstanceBound().embed(x))


def test_certifiable_before_building_never_says_no_to_a_plugin_that_may_set_its_bound_in_init() -> None:
    assert MetricSpec("a", ClassBound).certifiable() is True
    assert MetricSpec("b", SizeBound).certifiable() is True  # lipschitz stays None, lipschitz_for gives the bound
    assert MetricSpec("c", InstanceBound).certifiable() is None  # known once built: the run builds it and asks
    assert MetricSpec("d", NoBound).certifiable() is None
    assert metrics.get_metric_spec("convsim-tiny").certifiable() is False  # the project's own classes are known
