"""A timm-style registry: ``@register_metric("name")`` on a factory, ``create_metric(name, **kw)``.

Third-party packages add metrics without touching this project by declaring an entry point in
the ``lipsim_bench.metrics`` group; the entry point's target (a module or an object in it) is
imported the first time the registry is queried, and its ``@register_metric`` calls do the rest.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from lipsim_bench.extras import require
from lipsim_bench.metrics.base import PerceptualMetric, class_proven_by_project
from lipsim_bench.metrics.conventions import NOT_STATED, Conventions, convention_record
from lipsim_bench.metrics.errors import MetricError, WeightsUnavailableError
from lipsim_bench.metrics.fingerprint import source_fingerprint
from lipsim_bench.registry import Registry

ENTRY_POINT_GROUP = "lipsim_bench.metrics"
#: Classes defined under this package never set a bound on the instance only (``certifiable`` knows them).
_PROJECT_PACKAGE = "lipsim_bench."

#: Modules of built-in adapters; imported lazily so that ``import metrics`` stays cheap.
BUILTIN_MODULES: tuple[str, ...] = (
    "lipsim_bench.metrics.pixel",
    "lipsim_bench.metrics.convsim",
    "lipsim_bench.metrics.lipsim.metric",
    "lipsim_bench.metrics.foundation",
    "lipsim_bench.metrics.stlpips",
)

Factory = TypeVar("Factory", bound=Callable[..., PerceptualMetric])


def _always_available() -> bool:
    return True


@dataclass(frozen=True)
class MetricSpec:
    """What the registry knows about a metric before building it."""

    name: str
    factory: Callable[..., PerceptualMetric]
    description: str = ""
    weights: str = "none (no learned weights)"
    bundled: bool = False
    available: Callable[[], bool] = field(default=_always_available)
    how_to_get: str = ""
    fingerprint: Callable[[], str] | None = None
    fetch: Callable[[], object] | None = None
    default_run: bool = True
    requires: tuple[str, ...] = ()  # optional libraries (lipsim_bench.extras) the factory imports
    conventions: Conventions | None = None  # None: the plugin stated none ("not stated")

    def conventions_summary(self) -> str:
        """One line for ``list``: the stated conventions, or "not stated"."""
        return self.conventions.summary() if self.conventions is not None else NOT_STATED

    def conventions_record(self) -> dict[str, str | bool | None]:
        """The conventions as stored in every result record, with the registry's ``weights`` text."""
        return convention_record(self.conventions, self.weights)

    def weights_id(self) -> str:
        """What identifies the weights a build would load (part of every result key: new weights, new key)."""
        if self.fingerprint is None:
            return self.weights
        try:
            return str(self.fingerprint())
        except OSError as exc:
            raise MetricError(
                f"cannot read the weights of metric {self.name!r} ({exc}); {self.how_to_get or 'see `python run_bench.py list`'}"
            ) from None

    def metric_class(self) -> type[PerceptualMetric] | None:
        """The class a build returns, known without building: the factory itself when it is a class,
        else its return annotation (None when neither names a PerceptualMetric)."""
        factory = self.factory
        cls = factory if isinstance(factory, type) else None
        if cls is None:
            try:
                cls = typing.get_type_hints(factory).get("return")
            except Exception:  # unresolvable annotations: simply unknown
                return None
        return cls if isinstance(cls, type) and issubclass(cls, PerceptualMetric) else None

    def certifiable(self) -> bool | None:
        """Whether the metric declares a Lipschitz bound, known without building it (None: unknown).

        True when the class sets ``lipschitz`` or overrides ``lipschitz_for``; False only for the
        project's own classes without either. A plugin's class may still set ``self.lipschitz`` in
        ``__init__``, so there the built metric decides (None), exactly as for a bound set on the class.
        """
        cls = self.metric_class()
        if cls is None:
            return None
        if getattr(cls, "lipschitz", None) is not None or cls.lipschitz_for is not PerceptualMetric.lipschitz_for:
            return True
        return False if cls.__module__.startswith(_PROJECT_PACKAGE) else None

    def skips_proven(self) -> bool:
        """Whether runs may skip attacking this metric's certified triplets: only the project's own proofs."""
        cls = self.metric_class()
        return cls is not None and class_proven_by_project(cls) and bool(self.certifiable())

    def source_id(self) -> str:
        """A hash of the adapter's source code: editing ``embed`` makes new result keys."""
        return source_fingerprint(self.factory)

    def is_available(self) -> bool:
        """Whether the weights are on this machine (never triggers a download)."""
        try:
            return bool(self.available())
        except Exception:  # an availability probe must never crash a listing
            return False


METRICS: Registry[MetricSpec] = Registry(
    "metric",
    builtins=BUILTIN_MODULES,
    group=ENTRY_POINT_GROUP,
    error=MetricError,
    hint="see `python run_bench.py list`",
)


def register_metric(
    name: str,
    *,
    description: str = "",
    weights: str = "none (no learned weights)",
    bundled: bool = False,
    available: Callable[[], bool] | None = None,
    how_to_get: str = "",
    fingerprint: Callable[[], str] | None = None,
    fetch: Callable[[], object] | None = None,
    default_run: bool = True,
    requires: tuple[str, ...] = (),
    conventions: Conventions | None = None,
) -> Callable[[Factory], Factory]:
    """Register a factory (a function or a PerceptualMetric subclass) under ``name``.

    ``bundled`` metrics ship with the project and need no download: the default run uses them.
    ``available`` tells whether the weights are present; ``how_to_get`` is shown when they are not.
    ``fingerprint`` identifies the weights on disk (e.g. a sha256); result keys include it, so a run
    with other weights never reuses stored numbers. Without it, the ``weights`` text stands in.
    ``fetch`` downloads the weights into the place ``available`` looks (network needed); the
    presets call it for missing weights, ``run_bench.py fetch NAME`` on demand.
    ``default_run=False`` keeps a bundled metric out of the default run (``python run_bench.py``):
    it ships and is listed, but runs only when named (e.g. a variant for one evaluation, whose
    numbers in every default table would change the reference run).
    ``requires`` names the optional libraries the factory imports: a missing one is reported (with the
    extra that installs it) before anything else, weights included.
    ``conventions`` states what ``embed`` does to its input, the resize, the distance and the official package it
    mirrors (:class:`~lipsim_bench.metrics.conventions.Conventions`); ``list`` shows it and every result record stores
    it. Without it, both say "not stated".
    """
    if conventions is not None and not isinstance(conventions, Conventions):
        raise MetricError(
            f"metric {name!r}: conventions must be a lipsim_bench.metrics.Conventions, got {type(conventions).__name__}"
        )

    def decorator(factory: Factory) -> Factory:
        doc = (factory.__doc__ or "").strip().splitlines()
        spec = MetricSpec(
            name=name,
            factory=factory,
            description=description or (doc[0] if doc else ""),
            weights=weights,
            bundled=bundled,
            available=available or _always_available,
            how_to_get=how_to_get,
            fingerprint=fingerprint,
            fetch=fetch,
            default_run=default_run,
            requires=tuple(requires),
            conventions=conventions,
        )
        METRICS.add(name, spec, same=lambda old, new: old.factory is new.factory)
        return factory

    return decorator


def unregister_metric(name: str) -> None:
    """Remove a metric (tests use it to clean up toy metrics)."""
    METRICS.remove(name)


def list_metrics(*, bundled_only: bool = False) -> list[str]:
    """Names of registered metrics, sorted; ``bundled_only`` keeps those that ship with the project."""
    return [n for n, s in METRICS.items() if s.bundled or not bundled_only]


def default_metrics() -> list[str]:
    """The default run's metrics: bundled ones marked ``default_run`` whose weights are here, in a fixed reading order."""
    order = {
        "pixel-l2": 0,
        "convsim-tiny": 1,
        "stlpips-alex": 2,
        "lipsim-tiny": 3,
        "lipsim-tiny-stlpips": 4,
    }  # teachers first
    names = [n for n in list_metrics(bundled_only=True) if METRICS.get(n).default_run and METRICS.get(n).is_available()]
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def get_metric_spec(name: str) -> MetricSpec:
    """The spec registered under ``name``; a clear error with the closest and the known names otherwise."""
    return METRICS.get(name)


def create_metric(name: str, **kwargs: object) -> PerceptualMetric:
    """Build the metric registered under ``name`` in eval mode with frozen parameters."""
    spec = get_metric_spec(name)
    for module in spec.requires:
        require(module, f"metric {name!r}")
    # pretrained=False builds the architecture with random weights: nothing to find on disk
    if kwargs.get("pretrained") is not False and not spec.is_available():
        hint = spec.how_to_get or "see `python run_bench.py list`"
        raise WeightsUnavailableError(f"weights for metric {name!r} are not available here ({spec.weights}); {hint}")
    try:
        metric = spec.factory(**kwargs)
    except TypeError as exc:
        raise MetricError(f"bad options for metric {name!r}: {exc}") from None
    if not isinstance(metric, PerceptualMetric):
        raise MetricError(f"factory of metric {name!r} returned {type(metric).__name__}, not a PerceptualMetric")
    metric.requires_grad_(False)
    return metric.eval()
