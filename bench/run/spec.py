"""The run spec (what to evaluate, on what, how) and the ONE place its defaults are resolved.

The CLI, the presets and the Python API all build a :class:`RunSpec`; :func:`resolve` turns it
into evaluation objects with typed, complete options and the run's threat models. Nothing is
built or computed here, so a bad request fails before any work.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from lipsim_bench.attacks.base import ThreatModel
from lipsim_bench.datasets import dataset_attack_eps, dataset_task
from lipsim_bench.devices import resolve_device
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import Evaluation, get_evaluation
from lipsim_bench.evaluations.options import build_options, coerce, expand_sweeps
from lipsim_bench.evaluations.targets import PERTURB_TARGETS
from lipsim_bench.formatting import format_eps
from lipsim_bench.locations import env_number, env_switch
from lipsim_bench.metrics.precision import PRECISIONS
from lipsim_bench.run.seeds import MAX_SEED, check_seeds
from lipsim_bench.tasks import get_task

DEFAULT_EVALUATIONS: tuple[str, ...] = ("natural", "certified", "apgd")
#: Images are in [0, 1]: an l-inf radius above 1, or an l2 radius above the diagonal sqrt(3*H*W) of the
#: image cube, allows every image and measures nothing. Before the data is loaded (the CLI's check) the
#: diagonal of the largest resolution we accept, 1024x1024, bounds l2; the run checks the data's own size.
MAX_SIDE = 1024


def default_attack_eps(dataset: str, norm: str) -> tuple[float, ...]:
    """The attack radii a run uses when none are given: the dataset's own (``register_dataset(attack_eps=...)``)."""
    return dataset_attack_eps(dataset, norm)


@dataclass
class RunSpec:
    """Everything a run needs; the CLI builds it, tests and ``bench.evaluate`` build it directly.

    ``options`` maps an evaluation name to option values (text or typed), e.g.
    ``{"apgd": {"steps": 50}}``. ``threats`` lists (norm, radii) pairs for the per-threat
    evaluations (attacks); None means l2 at the dataset's default radii.
    """

    metrics: list[str]
    dataset: str = "sample"
    split: str | None = None
    n: int | None = None
    every: int = 1  # every k-th of the (first n) triplets: a subsample spread over the split
    evaluations: list[str] = field(default_factory=lambda: list(DEFAULT_EVALUATIONS))
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    threats: list[tuple[str, list[float]]] | None = None
    batch_size: int = 100
    device: str = "cpu"
    seed: int = 0
    #: several seeds (``--seeds``): the units that depend on the seed run under each, the others once under the
    #: first (which is then ``seed``); None: one seed
    seeds: list[int] | None = None
    out: Path | None = None
    workers: int = 0
    download: bool = False
    verify: bool = False  # attack every triplet, proven robust or not, and check every certificate
    save_adversarial: bool = False  # keep attack units' adversarial examples beside their records
    #: which image(s) of each triplet attacks perturb: ref (the paper's protocol), x0, x1, or all three under one
    #: norm ball (lipsim_bench.evaluations.targets); certificates are for the same target
    perturb: str = "ref"
    precision: str = "fp32"  # embeddings of metrics without a Lipschitz bound (lipsim_bench.metrics.precision): fp32, tf32, bf16, fp16

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ResolvedRun:
    """A spec's evaluations with complete options, and its threat models in table order."""

    evaluations: tuple[Evaluation, ...]
    threats: tuple[ThreatModel, ...]


#: Verification mode for a whole process (the test suite sets it): as ``--verify`` on every run.
VERIFY_ENV = "LIPSIM_BENCH_VERIFY"


#: Every on/off switch the project reads (run.plan reads the random-weights one), and the numeric ones.
SWITCHES = (VERIFY_ENV, "LIPSIM_BENCH_RANDOM_WEIGHTS")
EMBED_CACHE_ENV = "LIPSIM_BENCH_EMBED_CACHE_MB"


def verify_requested() -> bool:
    return env_switch(VERIFY_ENV)


def check_switches() -> None:
    """The environment switches, spelled as documented (1/0, true/false, yes/no, on/off): checked before any work."""
    for name in SWITCHES:
        env_switch(name)
    env_number(EMBED_CACHE_ENV, 2048, "megabytes")


def parse_eps(text: str, option: str = "--eps") -> list[float]:
    """Comma-separated radii; fractions like 36/255 are allowed. Rejects NaN, inf and negatives."""
    values: list[float] = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            value = float(Fraction(item)) if "/" in item else float(item)
        except (ValueError, ZeroDivisionError):
            raise BenchError(f"{option}: {item!r} is not a number; give radii like 0.5,1,2 or 36/255") from None
        if math.isnan(value) or math.isinf(value):
            raise BenchError(f"{option}: {item!r} is not a finite number; give radii like 0.5,1,2")
        if value < 0:
            raise BenchError(f"{option}: {item} is negative; a perturbation radius must be >= 0")
        values.append(value)
    if not values:
        raise BenchError(f"{option} is empty; give radii like 0.5,1,2")
    return values


def radii_value(value: Any, where: str) -> list[float]:
    """Radii from the Python API: a list of numbers, one number, or the CLI's text (``"0.5,1"``, ``"36/255"``)."""
    if isinstance(value, str):
        return parse_eps(value, where)
    value = value.tolist() if hasattr(value, "tolist") else value  # numpy arrays and scalars
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise BenchError(f"{where} is empty; give radii like [0.5, 1, 2] (or leave it out for the dataset's radii)")
    radii = []
    for item in items:
        if isinstance(item, str):
            radii += parse_eps(item, where)
            continue
        if isinstance(item, bool) or not isinstance(item, numbers.Real):
            raise BenchError(f"{where}: {item!r} is not a radius; give numbers like [0.5, 1, 2]")
        if not math.isfinite(item) or item < 0:
            raise BenchError(f"{where}: radius {item!r} must be a finite number >= 0; give radii like [0.5, 1, 2]")
        radii.append(float(item))
    return radii


def max_eps(norm: str, image_size: int | None = None) -> float:
    """The largest radius that still constrains anything: 1 for l-inf, the image diagonal for l2."""
    side = image_size or MAX_SIDE
    return 1.0 if norm == "linf" else math.sqrt(3 * side * side)


def check_radius(eps: float, norm: str, where: str, image_size: int | None = None) -> None:
    """Refuse a radius that is negative, not finite, or so large that every image is inside it."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise BenchError(f"{where}: radius {eps!r} must be a finite number >= 0; give radii like 0.5,1,2")
    bound = max_eps(norm, image_size)
    if eps > bound:
        size = f"{image_size}x{image_size}" if image_size else f"up to {MAX_SIDE}x{MAX_SIDE}"
        why = "pixels are in [0, 1]" if norm == "linf" else f"the diagonal of [0, 1] images {size}"
        raise BenchError(
            f"{where}: {norm} radius {format_eps(eps)} is larger than {bound:.4g} ({why}), so it allows every "
            "image and measures nothing; give a smaller radius"
        )


def resolve_threats(spec: RunSpec, dataset: str, image_size: int | None = None) -> tuple[ThreatModel, ...]:
    """The run's threat models, each radius checked and given once."""
    pairs = spec.threats or [("l2", list(default_attack_eps(dataset, "l2")))]
    try:
        threats = tuple(ThreatModel(norm, float(eps)) for norm, radii in pairs for eps in radii)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise BenchError(f"bad threat model (--threat/--eps): {exc}") from None
    seen: set[tuple[str, float]] = set()
    for threat in threats:
        check_radius(threat.eps, threat.norm, f"threat model {threat.norm} (--threat/--eps)", image_size)
        if (threat.norm, threat.eps) in seen:
            raise BenchError(
                f"threat model {threat.norm} eps {format_eps(threat.eps)} is given twice (--eps/--threat); give each radius once"
            )
        seen.add((threat.norm, threat.eps))
    return threats


def check_subsample(spec: RunSpec) -> None:
    """``n`` and ``every`` (checked before any data is read; numpy integers are integers)."""
    for name, value, fix in (
        ("n", spec.n, "a positive number of triplets, or None for all"),
        ("every", spec.every, "a positive integer (1: every triplet)"),
    ):
        if value is None and name == "n":
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise BenchError(f"{name} (--{name}) must be {fix}, got {value!r}")
        setattr(spec, name, int(value))


def _names(value: Any, what: str, flag: str) -> list[str]:
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise BenchError(f"{what} ({flag}) must be a list of names, got {value!r}; see `python run_bench.py list`")
    return list(value)


def _check_values(spec: RunSpec) -> None:
    """The type and range of every field, so that a spec built by hand fails as the CLI's does."""
    spec.metrics = _names(spec.metrics, "metrics", "--metrics")
    spec.evaluations = _names(spec.evaluations, "evaluations", "--evaluations")
    if not isinstance(spec.dataset, str) or not spec.dataset.strip():
        raise BenchError(
            f"dataset (--dataset) must be NAME[:ROOT], e.g. sample or night:/data/nights, got {spec.dataset!r}"
        )
    if spec.split is not None and (not isinstance(spec.split, str) or not spec.split.strip()):
        raise BenchError(
            f"split (--split) must be a split's name, e.g. test, or None for the dataset's test split; got {spec.split!r}"
        )
    for name, value, least in (("batch_size", spec.batch_size, 1), ("workers", spec.workers, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            flag = name.replace("_", "-")
            raise BenchError(f"{name} (--{flag}) must be an integer >= {least}, got {value!r}")
        setattr(spec, name, int(value))
    for name in ("verify", "download"):
        if not isinstance(getattr(spec, name), bool):
            raise BenchError(f"{name} (--{name}) must be True or False, got {getattr(spec, name)!r}")
    if spec.out is not None and not isinstance(spec.out, Path):
        raise BenchError(f"out (--out) must be a folder path, got {spec.out!r}")
    if not isinstance(spec.device, str):
        raise BenchError(f"device (--device) must be a device name (cpu, cuda or cuda:K), got {spec.device!r}")
    resolve_device(spec.device)
    if not isinstance(spec.options, Mapping) or not all(isinstance(v, Mapping) for v in spec.options.values()):
        raise BenchError(
            f"options must map an evaluation's name to its options, e.g. {{'apgd': {{'steps': 50}}}}; got {spec.options!r}"
        )


def _check_request(spec: RunSpec) -> None:
    """The spec's own values: metrics named once, a seed numpy accepts."""
    check_switches()
    check_subsample(spec)
    _check_values(spec)
    if not spec.metrics:
        raise BenchError("no metrics to evaluate; name at least one (see `python run_bench.py list`)")
    twice = sorted({m for m in spec.metrics if spec.metrics.count(m) > 1})
    if twice:
        raise BenchError(f"metric {twice[0]!r} is named twice in --metrics; name each once")
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, numbers.Integral) or not 0 <= spec.seed <= MAX_SEED:
        raise BenchError(f"seed (--seed) must be an integer from 0 to {MAX_SEED}, got {spec.seed!r}")
    spec.seed = int(spec.seed)  # numpy integers are integers
    if spec.seeds is not None:
        seeds = check_seeds(spec.seeds)
        if spec.seed not in (0, seeds[0]):
            raise BenchError(f"give seed (--seed) or seeds (--seeds), not both (seed {spec.seed}, seeds {seeds})")
        spec.seeds, spec.seed = seeds, seeds[0]  # the seed-independent units run once, at the first seed
    if spec.perturb not in PERTURB_TARGETS:
        raise BenchError(f"perturb (--perturb) {spec.perturb!r} is not one of {', '.join(PERTURB_TARGETS)}")
    if spec.precision not in PRECISIONS:
        raise BenchError(f"precision (--precision) {spec.precision!r} is not one of {', '.join(PRECISIONS)}")
    if spec.precision == "fp16" and not str(spec.device).startswith("cuda"):
        raise BenchError(
            f"--precision fp16 needs a CUDA device (float16 autocast), not {spec.device}; use bf16 or fp32 here"
        )


def _check_option_radii(evaluation: Evaluation, image_size: int | None) -> None:
    """An evaluation's ``eps`` option (certified radii, the direct attack's l2 radius): in range, each once."""
    options = evaluation.options
    if not is_dataclass(options) or "eps" not in {f.name for f in fields(options)}:
        return
    value = options.eps
    radii = list(value) if isinstance(value, (tuple, list)) else [value]
    flag = {"certified": "--certify-eps or ", "direct": "--histogram-eps or "}.get(evaluation.name, "")
    where = f"{evaluation.name}.eps ({flag}--set {evaluation.name}.eps)"
    for eps in radii:
        check_radius(eps, "l2", where, image_size)
    if len(set(radii)) < len(radii):
        raise BenchError(f"{where}: a radius is given twice ({', '.join(f'{r:g}' for r in radii)}); give each once")


def _check_verify_agrees(spec: RunSpec, name: str) -> None:
    """Verification mode attacks every triplet: an explicit ``skip_proven=true`` contradicts it."""
    given = spec.options.get(name, {}).get("skip_proven")
    if given is not None and coerce(bool, given, f"{name}.skip_proven") is True:
        why = "--verify (verify=True)" if spec.verify else f"{VERIFY_ENV}={os.environ.get(VERIFY_ENV, '')}"
        raise BenchError(
            f"{why} attacks every triplet, but {name}.skip_proven=true skips proven ones; drop one of the two"
        )


def _check_targets(spec: RunSpec, classes: Mapping[str, type[Evaluation]]) -> None:
    """Evaluations that perturb only some targets (``perturb_targets``, e.g. smoothing: the reference) refuse the others."""
    for name, cls in classes.items():
        targets = getattr(cls, "perturb_targets", PERTURB_TARGETS)
        if spec.perturb not in targets:
            raise BenchError(
                f"evaluation {name!r} supports only --perturb {', '.join(targets)}, not --perturb {spec.perturb}; "
                f"drop it from --evaluations or run it with --perturb {targets[0]}"
            )


def check_out_dir(out: Path | None) -> None:
    """A run folder that exists must be a folder: a file there fails now, not after the first unit."""
    if out is not None and out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} is a file, not a folder; give a folder (it is created if missing)")


def check_spec(spec: RunSpec) -> ResolvedRun:
    """Every check a request gets before any work; the CLI and the Python API both end here."""
    from lipsim_bench.datasets import parse_dataset_arg
    from lipsim_bench.metrics import get_metric_spec

    _check_request(spec)
    for name in spec.metrics:
        get_metric_spec(name)  # unknown names fail here, with the closest ones
    family, _ = parse_dataset_arg(spec.dataset)
    check_out_dir(spec.out)
    return resolve(spec, family.name)


def _check_tasks(spec: RunSpec, classes: Mapping[str, type[Evaluation]]) -> None:
    """Every evaluation scores the task of the run's dataset (a 2AFC attack has no meaning on retrieval queries)."""
    task = dataset_task(spec.dataset)
    target = get_task(task).target
    if target and spec.perturb != "ref":
        raise BenchError(
            f"--perturb {spec.perturb} chooses an image of a 2AFC triplet; on {spec.dataset} ({task}) attacks always "
            f"move the {target}: leave --perturb out"
        )
    for name, cls in classes.items():
        if task not in cls.tasks:
            raise BenchError(
                f"evaluation {name!r} scores {', '.join(cls.tasks)} items, and {spec.dataset} is a {task} dataset; "
                f"drop it, or use a {task} evaluation (`python run_bench.py list` shows each one's task)"
            )


def resolve(spec: RunSpec, dataset: str, image_size: int | None = None) -> ResolvedRun:
    """Evaluation objects with defaults resolved (dataset-dependent ones first, then the spec's values).

    Every value is checked here, before any work: a run never crashes after its units have run.
    """
    _check_request(spec)
    if not spec.evaluations:
        raise BenchError("no evaluations to run; name at least one, e.g. --evaluations natural")
    duplicates = sorted({e for e in spec.evaluations if spec.evaluations.count(e) > 1})
    if duplicates:
        raise BenchError(f"evaluation {duplicates[0]!r} is named twice; name each once")
    classes = {name: get_evaluation(name) for name in spec.evaluations}
    _check_tasks(spec, classes)
    _check_targets(spec, classes)
    stray = sorted(set(spec.options) - set(classes))
    if stray:
        raise BenchError(
            f"options were given for {stray[0]!r}, which is not among this run's evaluations "
            f"({', '.join(spec.evaluations)}); add it with --evaluations or drop its --set"
        )
    threats = resolve_threats(spec, dataset, image_size)  # first: --eps also sets the certified radii
    evaluations = []
    for name, cls in classes.items():
        values = {**cls.default_options(dataset, spec.seed), **spec.options.get(name, {})}
        if (spec.verify or verify_requested()) and "skip_proven" in {f.name for f in fields(cls.Options)}:
            _check_verify_agrees(spec, name)
            values["skip_proven"] = False
        for combo in expand_sweeps(name, cls.sweeps, values):
            evaluations.append(cls(build_options(cls.Options, name, combo)))
            _check_option_radii(evaluations[-1], image_size)
    columns = [ev.column for ev in evaluations]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise BenchError(
            f"{twice[0]} is asked for twice (a swept option lists one value twice, e.g. 0.25 and 1/4); give each value once"
        )
    return ResolvedRun(tuple(evaluations), threats)
