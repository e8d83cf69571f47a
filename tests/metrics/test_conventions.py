"""Every built-in metric states its conventions completely, in agreement with what its class does; a half-stated
record is refused when it registers, and a plugin without one is "not stated", never a crash."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from lipsim_bench.metrics import (
    Conventions,
    MetricError,
    MetricSpec,
    PerceptualMetric,
    create_metric,
    get_metric_spec,
    list_metrics,
    register_metric,
    unregister_metric,
)
from lipsim_bench.metrics.conventions import NO_RESIZE, NOT_STATED, THIS_PROJECT

#: Every adapter module of the project registers under this package; plugins do not.
PROJECT_PACKAGE = "lipsim_bench."
GOOD = {"input": "x - 0.5", "resize": NO_RESIZE, "distance": "1 - cos of the embedding", "mirrors": THIS_PROJECT}


def builtin_names() -> list[str]:
    return [n for n in list_metrics() if get_metric_spec(n).factory.__module__.startswith(PROJECT_PACKAGE)]


def incomplete(spec: MetricSpec) -> list[str]:
    """What is missing from a spec's stated record: everything when none is stated, else its empty fields."""
    if spec.conventions is None:
        return ["conventions (none stated)"]
    record = spec.conventions_record()
    return [key for key, value in record.items() if value is None or (isinstance(value, str) and not value.strip())]


def test_the_builtins_are_found() -> None:
    names = builtin_names()
    assert {"pixel-l2", "convsim-tiny", "lipsim-tiny", "lipsim", "clip", "dino", "dreamsim", "lpips"} <= set(names)


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_states_a_complete_record(name: str) -> None:
    spec = get_metric_spec(name)
    assert not incomplete(spec), f"{name}: {incomplete(spec)}"
    mirrors = spec.conventions.mirrors
    # an official source names its version (x.y.z) or, for a repository without releases, its checkpoint
    assert mirrors == THIS_PROJECT or re.search(r"\d+\.\d+\.\d+|checkpoint \S+", mirrors), mirrors


@pytest.mark.parametrize("name", builtin_names())
def test_the_stated_distance_is_the_class_distance_kind(name: str) -> None:
    """A record saying "1 - cos" on an l2 metric (or the reverse) is a record that lies."""
    spec = get_metric_spec(name)
    cls = spec.metric_class()
    assert spec.conventions is not None, f"{name} states no conventions"
    assert cls is not None, f"{name}: the registry cannot tell its class"
    if cls.distance_kind == "cosine" and cls.distance is PerceptualMetric.distance:
        assert spec.conventions.distance.startswith("1 - cos"), spec.conventions.distance
    else:
        assert "l2" in spec.conventions.distance and not spec.conventions.distance.startswith("1 - cos")


@pytest.mark.parametrize("name", ["pixel-l2", "convsim-tiny", "convsim-tiny-noise", "lipsim-tiny"])
def test_the_stated_resize_is_the_bundled_metric_input_size(name: str) -> None:
    metric, resize = create_metric(name), get_metric_spec(name).conventions.resize
    size = getattr(metric, "input_size", None)
    assert resize == NO_RESIZE if size is None else f"to {size}x{size}," in resize, resize


def test_the_spec_gives_the_record_and_summary() -> None:
    spec = get_metric_spec("convsim-tiny")
    record = spec.conventions_record()
    assert record == {**spec.conventions.as_dict(), "weights": spec.weights}
    assert record["input"] == "x - 0.5" and record["symmetric"] is True and record["input_range"] == "[0, 1]"
    assert spec.conventions_summary().startswith("input: x - 0.5 | resize: bilinear to 64x64")


@pytest.mark.parametrize("field", ["input", "resize", "distance", "mirrors", "input_range"])
@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_an_empty_or_odd_field_is_refused_in_one_line(field: str, bad: object) -> None:
    with pytest.raises(MetricError, match=f"Conventions.{field} must be a non-empty text"):
        Conventions(**{**GOOD, field: bad})


def test_symmetric_must_be_a_bool() -> None:
    with pytest.raises(MetricError, match="Conventions.symmetric must be True or False"):
        Conventions(**GOOD, symmetric="yes")
    assert "(asymmetric)" in Conventions(**GOOD, symmetric=False).summary()


def test_register_metric_refuses_what_is_not_a_conventions() -> None:
    with pytest.raises(MetricError, match="conventions must be a lipsim_bench.metrics.Conventions, got dict"):
        register_metric("test-dict-conventions", conventions=GOOD)  # type: ignore[arg-type]
    assert "test-dict-conventions" not in list_metrics()


def test_a_metric_without_conventions_is_not_stated() -> None:
    @register_metric("test-unstated", description="toy")
    class Unstated(PerceptualMetric):
        def embed(self, x):
            return x.mean(dim=(2, 3))

    try:
        spec = get_metric_spec("test-unstated")
        assert spec.conventions is None and spec.conventions_summary() == NOT_STATED
        record = spec.conventions_record()
        assert set(record) == {f.name for f in fields(Conventions)} | {"weights"}
        assert record["symmetric"] is None and record["weights"] == spec.weights
        assert all(record[f.name] == NOT_STATED for f in fields(Conventions) if f.name != "symmetric")
        assert incomplete(spec) == ["conventions (none stated)"]
    finally:
        unregister_metric("test-unstated")
