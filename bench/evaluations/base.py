"""The Evaluation protocol: one class per kind of evaluation, and the runner, tables, plots and dry
run only ever talk to it (never to an evaluation's name).

An evaluation owns its name, its :class:`Kind` (which alone drives column order, plot panels and the
cost class), the tasks it scores (``tasks``), the figures drawn from its rows (``figures``), whether it runs once
per threat model, an ``Options`` dataclass (its resolved values
enter the unit key, with ``version``), ``applies_to(spec)`` (answered from the registry before any
model is built), ``run`` (per-triplet rows), ``score``, ``notes`` and ``flops``.

Adding one is one file: subclass :class:`Evaluation`, decorate it with ``@register_evaluation``,
and load the file with ``--plugin FILE.py`` (or an entry point in ``lipsim_bench.evaluations``).
"""

from __future__ import annotations

import enum
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.options import options_dict
from lipsim_bench.evaluations.twoafc import is_correct, score_rows, twoafc_agreement
from lipsim_bench.locations import env_number

if TYPE_CHECKING:
    from lipsim_bench.attacks.base import ThreatModel
    from lipsim_bench.metrics import MetricSpec, PerceptualMetric

POSITION = "position"  # per-triplet column: the triplet's index in the dataset, for merging shards


class Kind(str, enum.Enum):
    """What an evaluation measures; the order is the tables' column order."""

    CLEAN = "clean"
    ATTACK = "attack"
    CERTIFICATE = "certificate"
    DIAGNOSTIC = "diagnostic"  # no score in the table (e.g. d(x, x + delta) histograms)

    @property
    def rank(self) -> int:
        return list(Kind).index(self)


@dataclass(frozen=True)
class NoOptions:
    """An evaluation without options."""


@dataclass(frozen=True)
class PassCost:
    """FLOPs of one image's forward and forward + backward pass (bench/protocol/cost_table.json)."""

    forward: float
    forward_backward: float


@dataclass(frozen=True)
class UnitRef:
    """One unit of the run as another unit names it: a metric, an evaluation, a threat model (or None)."""

    metric: str
    evaluation: Evaluation
    threat: ThreatModel | None

    @property
    def address(self) -> tuple[str, str, ThreatModel | None]:
        """The key of its rows in ``Context.inputs`` (the evaluation by its column name)."""
        return (self.metric, self.evaluation.column, self.threat)


class ArtifactSink(Protocol):
    """Stores a unit's tensors beside its record (a format that cannot carry code), keyed like the unit."""

    def __call__(self, name: str, tensors: dict[str, Tensor]) -> None: ...


@dataclass
class Context:
    """What a unit runs with besides the metric and the batches."""

    device: torch.device
    seed: int
    metric_name: str
    threat: ThreatModel | None = None
    prior: pd.DataFrame | None = (
        None  # rows of the unit this one builds on (``Evaluation.builds_on``), in dataset order
    )
    #: Which image(s) of each triplet the run perturbs: ref (the paper's protocol), x0, x1 or all.
    perturb: str = "ref"
    #: Rows of the units this one depends on (``Evaluation.depends_on``), by (metric, evaluation column, threat).
    inputs: dict[tuple[str, str, ThreatModel | None], pd.DataFrame] = field(default_factory=dict)
    #: Where the unit's tensors go (adversarial examples), or None when the run does not keep them.
    artifacts: ArtifactSink | None = None
    #: Reads the tensors a dependency stored, by (metric, evaluation column, threat); None when there is no store.
    load_artifacts: Callable[[tuple[str, str, ThreatModel | None]], dict[str, Tensor] | None] | None = None


@dataclass
class EmbeddedBatch:
    """One batch with its clean embeddings and distances, computed once and shared by evaluations."""

    batch: dict
    e_ref: Tensor
    e0: Tensor
    e1: Tensor
    d0: Tensor
    d1: Tensor

    @property
    def p(self) -> Tensor:
        return self.batch["p"]

    @property
    def correct(self) -> Tensor:
        return is_correct(self.d0, self.d1, self.p)

    def rows(
        self,
        evaluation: str,
        norm: str | None,
        eps: float,
        agreement: Tensor,
        *,
        d0: Tensor | None = None,
        d1: Tensor | None = None,
        **extra: Tensor,
    ) -> pd.DataFrame:
        """Per-triplet rows of this batch (``d0``/``d1`` default to the clean distances)."""
        return pd.DataFrame(
            {
                POSITION: self.batch["index"].numpy(),  # dropped by the runner after merging shards
                "evaluation": evaluation,
                "norm": norm,
                "eps": eps,
                "group": list(self.batch["group"]),
                "id": list(self.batch["id"]),
                "p": self.p.double().numpy(),
                "d0": (self.d0 if d0 is None else d0).double().numpy(),
                "d1": (self.d1 if d1 is None else d1).double().numpy(),
                "agreement": agreement.double().numpy(),
                "correct": self.correct.numpy(),
                **{k: v.double().numpy() for k, v in extra.items()},
            }
        )


def loader_triplets(loader: DataLoader) -> int | None:
    """How many triplets this process's loader yields (its shard), for progress bars."""
    sampler = loader.batch_sampler
    return sum(len(b) for b in sampler) if sampler is not None and hasattr(sampler, "__iter__") else None


def progress(loader: DataLoader, desc: str) -> Iterator[dict]:
    """Batches with a per-unit bar counting triplets (rate and ETA in triplets/s)."""
    with tqdm(total=loader_triplets(loader), desc=desc, unit="triplet", leave=False, dynamic_ncols=True) as bar:
        for batch in loader:
            yield batch
            bar.update(len(batch["id"]))


class EmbeddingCache:
    """Clean embeddings and distances of one metric, per batch, shared by every unit of a run.

    Natural, certified and every attack radius need the same forward pass on ref, x0 and x1; the
    first unit computes it, the others read it. A budget in bytes (``LIPSIM_BENCH_EMBED_CACHE_MB``,
    default 2048) keeps feature-map metrics (LPIPS) on large datasets from filling memory: past it,
    batches are recomputed (the same numbers, the same batch, the same forward).
    """

    def __init__(self, budget_bytes: int | None = None) -> None:
        if budget_bytes is None:
            budget_bytes = int(env_number("LIPSIM_BENCH_EMBED_CACHE_MB", 2048, "megabytes") * 2**20)
        self.budget = budget_bytes
        self.used = 0
        self._owner: weakref.ref | None = None  # weak: the cache must not keep a finished metric alive
        self._items: dict[tuple[int, ...], tuple[Tensor, ...]] = {}
        self.hits = 0

    def bind(self, metric: object) -> None:
        """Forget everything when the metric changes (another model, another embedding)."""
        if self._owner is None or self._owner() is not metric:
            self._items.clear()
            self.used, self._owner = 0, weakref.ref(metric)

    def clear(self) -> None:
        self._items.clear()
        self.used, self._owner = 0, None

    def get(self, positions: tuple[int, ...]) -> tuple[Tensor, ...] | None:
        found = self._items.get(positions)
        self.hits += found is not None
        return found

    def put(self, positions: tuple[int, ...], tensors: tuple[Tensor, ...]) -> None:
        size = sum(t.element_size() * t.nelement() for t in tensors)
        if self.used + size <= self.budget:
            self._items[positions] = tensors
            self.used += size


def embedded_batches(
    metric: PerceptualMetric,
    loader: DataLoader,
    device: torch.device,
    desc: str,
    metric_name: str,
    cache: EmbeddingCache | None = None,
) -> Iterator[EmbeddedBatch]:
    """Embed ref, x0, x1 in one forward pass per batch (or read them from ``cache``); distances checked finite."""
    if cache is not None:
        cache.bind(metric)
    for batch in progress(loader, desc):
        positions = tuple(int(i) for i in batch["index"])
        stored = cache.get(positions) if cache is not None else None
        if stored is None:
            stored = _embed_batch(metric, batch, device, metric_name)
            if cache is not None:
                cache.put(positions, stored)
        yield EmbeddedBatch(batch, *stored)


def _embed_batch(metric: PerceptualMetric, batch: dict, device: torch.device, metric_name: str) -> tuple[Tensor, ...]:
    ref, x0, x1 = (batch[k].to(device) for k in ("ref", "x0", "x1"))
    with torch.no_grad():
        images = torch.cat([ref, x0, x1])
        e_ref, e0, e1 = checked_call(metric_name, "embed", lambda: metric.embed(images), len(images)).chunk(3)
        d0 = checked_call(metric_name, "distance", lambda: metric.distance(e_ref, e0), len(ref)).cpu()
        d1 = checked_call(metric_name, "distance", lambda: metric.distance(e_ref, e1), len(ref)).cpu()
    bad = ~(torch.isfinite(d0) & torch.isfinite(d1))
    if bad.any():
        first = batch["id"][int(bad.nonzero()[0])]
        raise BenchError(
            f"metric {metric_name!r} gave a non-finite distance (NaN/inf) on triplet {first}; check its weights"
        )
    return e_ref.cpu(), e0.cpu(), e1.cpu(), d0, d1


def checked_call(metric_name: str, what: str, call: Callable[[], Any], size: int) -> Tensor:
    """A plugin metric's ``embed``/``distance`` output, its failures and malformed outputs as one line naming it.

    A wrong batch size would pair the wrong triplets (silently) or fail far away in a traceback.
    """
    try:
        out = call()
    except (BenchError, torch.cuda.OutOfMemoryError):
        raise  # already one clear line, or a machine fault the runner explains
    except Exception as exc:
        raise BenchError(
            f"metric {metric_name!r}: {what} raised {type(exc).__name__}: {exc}; fix the metric's {what}"
        ) from None
    per_pair = what == "distance"
    unit, expected = ("pairs", "(N,)") if per_pair else ("images", "(N, D)")
    if not isinstance(out, Tensor):
        raise BenchError(
            f"metric {metric_name!r}: {what} returned {type(out).__name__} for a batch of {size} {unit}; it must return a tensor {expected}"
        )
    if out.dim() == 0 or out.shape[0] != size or (out.dim() != 1 if per_pair else out.dim() < 2):
        raise BenchError(
            f"metric {metric_name!r}: {what} returned shape {tuple(out.shape)} for a batch of {size} {unit}; it must return {expected}"
        )
    return out


class Evaluation:
    """Base of every evaluation kind; subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    per_threat: ClassVar[bool] = False  # one unit per threat model of the run (attacks)
    batch_dependent: ClassVar[bool] = False  # random draws per batch: the batch size enters the key
    version: ClassVar[int] = 1  # bump when the numbers it computes change
    Options: ClassVar[type] = NoOptions
    output_csv: ClassVar[str | None] = None  # diagnostics: the run-folder CSV their rows go to
    #: Names of the tensor files a unit stores through ``Context.artifacts`` when the run keeps them
    #: (``--save-adversarial``); a stored unit lacking one is computed again in such a run.
    artifacts: ClassVar[tuple[str, ...]] = ()
    #: Whether its units read the tensor files of the units they depend on (``Context.load_artifacts``): the run
    #: then keeps those files whatever ``--save-adversarial`` says.
    reads_artifacts: ClassVar[bool] = False
    description: ClassVar[str] = ""
    #: Options a run may give several values of (``--set smoothing.sigma=0.12,0.25,0.5``): one unit per value,
    #: and the value is part of the evaluation's name in rows and tables (:attr:`column`).
    sweeps: ClassVar[tuple[str, ...]] = ()
    #: The tasks (lipsim_bench.tasks) whose items it scores: a run plans it only on a dataset of one of them.
    tasks: ClassVar[tuple[str, ...]] = ("2afc",)
    #: Figures the report draws from its rows: dotted paths ``"module:function"`` of report-layer functions
    #: ``draw(run_dir: Path, rows: pd.DataFrame) -> list[str]`` (the file names written); records store them, so the
    #: report finds a figure by what the evaluation declares, never by its name or a file's.
    figures: ClassVar[tuple[str, ...]] = ()
    #: Its place among the columns of its kind where tables line them up by declaration (the certificates table:
    #: a proof before a statistical certificate), then by name.
    table_rank: ClassVar[int] = 1

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()

    @property
    def column(self) -> str:
        """The evaluation's name in per-triplet rows, score rows and table columns: its name, with the values of
        its swept options (``smoothing(sigma=0.25)``), so the cells of one sigma never overwrite another's."""
        values = [f"{option}={format_option(getattr(self.options, option))}" for option in self.sweeps]
        return f"{self.name}({','.join(values)})" if values else self.name

    # -- before anything is built ------------------------------------------------------------------

    @classmethod
    def applies_to(cls, spec: MetricSpec) -> bool | None:
        """Whether the metric of ``spec`` can be evaluated (None: only known once it is built)."""
        return True

    @classmethod
    def default_options(cls, dataset: str, seed: int) -> dict[str, Any]:
        """Run-dependent defaults (e.g. radii by dataset), applied before the user's values."""
        return {}

    def resolved(self, threat: ThreatModel | None, seed: int) -> dict[str, Any]:
        """Every value that changes this unit's numbers (its part of the unit key)."""
        return options_dict(self.options)

    def depends_on(self, metric: str, threat: ThreatModel | None, run: tuple[UnitRef, ...]) -> list[UnitRef]:
        """The units of the run (``run``: every unit, in table order) whose rows this unit reads.

        The planner runs them first, puts their keys into this unit's key and hands their rows over as
        ``Context.inputs[ref.address]`` (a unit that did not apply hands none). The worst case over an attack
        ensemble reads the attacks of its metric and threat; a transfer unit reads another metric's attack.
        """
        return []

    def builds_on(self, threat: ThreatModel | None, threats: tuple[ThreatModel, ...]) -> ThreatModel | None:
        """The threat model of the unit (same metric, same evaluation) whose rows this unit reuses.

        None: the unit is independent. The planner runs that unit first, puts its key into this
        unit's key and hands its rows over as ``Context.prior``.
        """
        return None

    def flops(self, cost: PassCost, n_triplets: int, threat: ThreatModel | None, attacked: float = 1.0) -> float:
        """FLOPs of one unit on ``n_triplets`` (the dry run sums them); ``attacked``: the fraction of
        triplets an attack still runs on (after flips carried and triplets proven robust)."""
        return 3 * n_triplets * cost.forward

    # -- computing --------------------------------------------------------------------------------

    def applies(self, metric: PerceptualMetric) -> bool:
        """The built metric's answer, where ``applies_to`` could not tell."""
        return True

    def run(self, metric: PerceptualMetric, batches: Iterable[EmbeddedBatch], ctx: Context) -> pd.DataFrame:
        raise NotImplementedError

    def score(self, rows: pd.DataFrame, split: str) -> list[dict[str, Any]]:
        """Score rows (split, evaluation, norm, eps, score, n) from this unit's per-triplet rows."""
        return score_rows(rows, split=split) if len(rows) else []

    def notes(self, metric_name: str, rows: pd.DataFrame) -> list[str]:
        """Table footer lines this unit contributes."""
        return []

    def measure(self) -> str:
        """What its cells measure where that is not its task's score ("mAP", "Recall@5"); empty where it is. Records
        store it, and the table's footer names each such column, so a title never speaks for a column it does not
        describe."""
        return ""

    def label(self, threat: ThreatModel | None) -> str:
        from lipsim_bench.formatting import format_eps

        return self.name + (f" {threat.norm} {format_eps(threat.eps)}" if threat else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options!r})"


def format_option(value: Any) -> str:
    """An option's value as a column name shows it: floats in the shortest text that reads back as the same
    float (0.25, 0.1200001), so two different values never share a column."""
    return repr(float(value)) if isinstance(value, float) else str(value)


def natural_agreement(item: EmbeddedBatch) -> Tensor:
    return twoafc_agreement(item.d0, item.d1, item.p)


def empty_rows() -> pd.DataFrame:
    return pd.DataFrame({POSITION: np.array([], dtype=np.int64)})
