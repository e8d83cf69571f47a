"""The Python API beside the CLI (RobustBench's one call): ``bench.evaluate(...)``.

    >>> import bench
    >>> result = bench.evaluate(metric="lipsim-tiny", dataset="sample", n=20,
    ...                         evaluations=["natural", "apgd"], eps=[0.5], apgd={"steps": 10})
    >>> result.table            # the score table (a row per metric)
    >>> result.triplets         # per-triplet rows of every evaluation

Nothing is written unless ``out`` is given; with ``out``, the run folder is the CLI's (records,
tables, run.log) and a second call with the same arguments reuses every unit.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lipsim_bench.devices import resolve_device
from lipsim_bench.errors import BenchError
from lipsim_bench.report.collect import Entry, collect
from lipsim_bench.report.outputs import write_outputs
from lipsim_bench.report.tables import provenance_line, render_tables, scores_table
from lipsim_bench.run.distributed import Shard
from lipsim_bench.run.loop import RunOutcome, Store, run_units
from lipsim_bench.run.records import MemoryStore
from lipsim_bench.run.seeds import parse_seeds
from lipsim_bench.run.spec import RunSpec, check_spec, default_attack_eps, parse_eps, radii_value

NORMS = ("l2", "linf")


@dataclass
class Evaluated:
    """What a run produced: scores (long and as the paper's table), per-triplet rows, diagnostics."""

    scores: pd.DataFrame
    table: pd.DataFrame
    triplets: pd.DataFrame
    markdown: str
    out_dir: Path | None
    diagnostics: dict[str, pd.DataFrame] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    reused_times: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # the tables and figures written into out_dir

    def reuse_summary(self) -> str:
        """How many units came from earlier runs, and when those were computed."""
        total, reused = len(self.records), len(self.reused_times)
        if not reused:
            return f"computed all {total} unit(s)"
        times = sorted(t for t in self.reused_times if t)
        when = f" (computed {times[0]} to {times[-1]})" if times else ""
        return f"reused {reused} of {total} unit(s) from earlier runs{when}; computed {total - reused}"


def _evaluated(outcome: RunOutcome) -> Evaluated:
    collected = collect([Entry(r.record, r.rows) for r in outcome.results])
    split = outcome.split
    files: list[str] = []
    if outcome.out_dir is not None:  # the folder's tables: every cell its records hold, this run's and earlier ones'
        document = write_outputs(
            outcome.out_dir, outcome.dataset, split, collected, provenance_line(outcome.out_dir / "records")
        )
        markdown, files = document.markdown, document.files
    else:
        markdown = (
            render_tables(collected.scores, outcome.dataset, split, collected.notes, "provenance: in memory").markdown
            if len(collected.scores)
            else ""
        )
    table = scores_table(collected.scores, split) if len(collected.scores) else pd.DataFrame()
    reused = [str((r.record.get("provenance") or {}).get("time", "")) for r in outcome.reused]
    return Evaluated(
        collected.scores,
        table,
        collected.triplets,
        markdown,
        outcome.out_dir,
        collected.diagnostics,
        [r.record for r in outcome.results],
        reused,
        files,
    )


def run_and_report(spec: RunSpec, shard: Shard | None = None, store: Store | None = None) -> Evaluated | None:
    """Run every unit of ``spec`` and write (or, in memory, render) its tables; None on ranks > 0."""
    outcome = run_units(spec, shard, store)
    return None if outcome is None else _evaluated(outcome)


def _clean_default(dataset: object) -> tuple[str, ...]:
    """The evaluations a call naming none runs: the first of its dataset's task's defaults, its clean score
    (2AFC: natural; retrieval: recall; kNN: knn)."""
    from lipsim_bench.datasets import dataset_task
    from lipsim_bench.tasks import get_task

    defaults = get_task(dataset_task(str(dataset))).default_evaluations if isinstance(dataset, str) else ()
    return defaults[:1] or ("natural",)


def evaluate(
    metric: str | Sequence[str],
    dataset: str = "sample",
    evaluations: str | Sequence[str] | None = None,
    *,
    split: str | None = None,
    n: int | None = None,
    every: int = 1,
    eps: float | str | Sequence[float] | None = None,
    norm: str | None = None,
    threats: str | Sequence[str | tuple[str, Sequence[float]]] | None = None,
    seed: int = 0,
    seeds: str | Sequence[int] | None = None,
    batch_size: int = 100,
    device: str | None = None,
    out: str | Path | None = None,
    plugins: str | Sequence[str] = (),
    verify: bool = False,
    precision: str = "fp32",
    perturb: str = "ref",
    save_adversarial: bool = False,
    **options: dict[str, Any],
) -> Evaluated:
    """Evaluate one or more metrics; ``NAME={"option": value}`` sets an evaluation's options.

    Without ``evaluations``, the clean score of the dataset's task (2AFC: ``natural``; retrieval: ``recall``).

    Every argument is checked as the CLI checks it (the same :class:`RunSpec` and the same checks),
    before any work: a bad one raises :class:`~lipsim_bench.errors.BenchError` with one line naming it.
    ``metric`` and ``evaluations`` take a name, a list of names, or the CLI's ``"a,b"``; ``eps`` (with
    ``norm``, as ``--eps``/``--norm``: the l2 radii are also the certified ones unless
    ``certified={"eps": ...}``) or ``threats`` (``[("l2", [0.5, 1]), "linf:4/255"]``, as ``--threat``)
    give the attacks' threat models (default: l2 at the dataset's radii); ``device`` defaults to cuda
    when available, as ``--device``; ``plugins`` are files or modules to load first, as
    ``--plugin``/``--import``; ``verify`` attacks even triplets proven robust (as ``--verify``);
    ``precision`` as ``--precision``; ``seeds`` (``[0, 1, 2]`` or ``"0,1,2"``, instead of ``seed``) runs the
    units that depend on the seed once per seed and reports each cell's mean over seeds (as ``--seeds``); ``perturb`` (``"ref"``, ``"x0"``, ``"x1"`` or ``"all"``) as ``--perturb``; ``save_adversarial``
    keeps the attacks' adversarial examples beside their records (as ``--save-adversarial``; needs ``out``); ``every`` keeps every k-th triplet (as ``--every``); a swept
    option takes a list (``smoothing={"sigma": [0.12, 0.25]}``).
    """
    from lipsim_bench.plugins import load_plugins

    sources = _name_list("plugins", plugins, commas=False, empty_ok=True)
    load_plugins([p for p in sources if p.endswith(".py")], [p for p in sources if not p.endswith(".py")])
    metrics = _name_list("metric", metric)
    names = _name_list("evaluations", evaluations if evaluations is not None else _clean_default(dataset))
    _check_options(options, names)
    pairs = _threats(eps, norm, threats, dataset)
    values = {k: dict(v) for k, v in options.items()}
    if eps is not None and norm in (None, "l2") and "certified" in names and "eps" not in values.get("certified", {}):
        values.setdefault("certified", {})["eps"] = pairs[0][1] if pairs else None  # as --eps: also the certified radii
    if seeds is not None and seed != 0:
        raise BenchError(f"give seed= or seeds=, not both (seed={seed!r}, seeds={seeds!r})")
    for flag, value in (("verify", verify), ("save_adversarial", save_adversarial)):
        if not isinstance(value, bool):
            raise BenchError(f"{flag}={value!r}: give True or False")
    spec = RunSpec(
        metrics=metrics,
        dataset=dataset,
        split=split,
        n=n,
        every=every,
        evaluations=names,
        options=values,
        threats=pairs,
        batch_size=batch_size,
        device=str(resolve_device(device, "device")),
        seed=seed,
        seeds=parse_seeds(seeds) if isinstance(seeds, str) else seeds.tolist() if hasattr(seeds, "tolist") else seeds,
        out=_out(out),
        verify=verify,
        precision=precision,
        perturb=perturb,
        save_adversarial=save_adversarial,
    )
    check_spec(spec)  # the CLI's checks, all of them, before any work
    store = None if out is not None else MemoryStore()
    result = run_and_report(spec, None, store)
    assert result is not None  # one process
    return result


def _name_list(argument: str, value: Any, *, commas: bool = True, empty_ok: bool = False) -> list[str]:
    """A name, a list of names, or the CLI's comma-separated text; anything else is one line naming ``argument``."""
    example = {
        "metric": "'lipsim-tiny' or ['pixel-l2', 'lipsim-tiny']",
        "evaluations": "['natural', 'apgd']",
        "plugins": "['my_metric.py', 'my_package.plugins']",
    }[argument]
    if isinstance(value, str):
        items = [t.strip() for t in value.split(",")] if commas else [value.strip()]
        items = [t for t in items if t]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, Path)) for v in value):
        items = [str(v).strip() for v in value]
        if not all(items):
            raise BenchError(f"{argument}={value!r} holds an empty name; give names like {example}")
    else:
        objects = list(value) if isinstance(value, (list, tuple)) else [value]
        bad = next(v for v in objects if not isinstance(v, (str, Path))) if objects else value
        what = (
            f"{type(value).__name__} holding {type(bad).__name__}"
            if isinstance(value, (list, tuple))
            else type(value).__name__
        )
        hint = ""
        if argument == "metric" and hasattr(bad, "embed"):
            hint = " (a metric object: register its class with lipsim_bench.metrics.register_metric('my-metric') and pass the name)"
        raise BenchError(f"{argument}= takes a name or a list of names, e.g. {example}, not a {what}{hint}")
    if not items and not empty_ok:
        raise BenchError(
            f"{argument}={value!r} is empty; give at least one name, e.g. {example} (see `python run_bench.py list`)"
        )
    return items


def _check_options(options: dict[str, Any], evaluations: list[str]) -> None:
    """``NAME={...}`` keywords: a dict each, for an evaluation of this run; a mistyped argument is named as such."""
    from lipsim_bench.evaluations import list_evaluations

    for name, value in options.items():
        if name not in evaluations:
            if name in list_evaluations():
                raise BenchError(
                    f"{name}={value!r} sets options of {name!r}, which is not in evaluations={evaluations!r}; "
                    f"add it there or drop {name}="
                )
            close = difflib.get_close_matches(name, [*_PARAMETERS, *list_evaluations()], n=1, cutoff=0.6)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise BenchError(
                f"evaluate() has no argument {name!r}{guess}; its arguments: {', '.join(_PARAMETERS)}, "
                "and NAME={...} for the options of an evaluation NAME of this run"
            )
        if not isinstance(value, Mapping):
            raise BenchError(
                f"{name}={value!r}: give the options as a dict, e.g. {name}={{'steps': 10}} "
                "(see `python run_bench.py list` for its options)"
            )
        for option in value:
            if not isinstance(option, str):
                raise BenchError(f"{name}={value!r}: option names are strings, e.g. {name}={{'steps': 10}}")


_PARAMETERS = (
    "metric",
    "dataset",
    "evaluations",
    "split",
    "n",
    "every",
    "eps",
    "norm",
    "threats",
    "seed",
    "seeds",
    "batch_size",
    "device",
    "out",
    "plugins",
    "verify",
    "precision",
    "perturb",
    "save_adversarial",
)


def _threats(eps: Any, norm: Any, threats: Any, dataset: Any) -> list[tuple[str, list[float]]] | None:
    """``eps``/``norm`` or ``threats`` as (norm, radii) pairs, checked as ``--eps``/``--norm``/``--threat``."""
    if norm is not None and norm not in NORMS:
        raise BenchError(f"norm={norm!r}: give 'l2' or 'linf'")
    if threats is not None:
        if eps is not None or norm is not None:
            raise BenchError(
                "give either threats= or eps=/norm=, not both (threats=[('l2', [0.5, 1]), ('linf', [4/255])] holds both norms)"
            )
        items = [threats] if isinstance(threats, str) else threats
        if not isinstance(items, (list, tuple)) or not items:
            raise BenchError(
                f"threats={threats!r}: give a list of (norm, radii) pairs or 'NORM:EPS,...' texts, e.g. [('l2', [0.5, 1]), 'linf:4/255']"
            )
        return [_threat(item) for item in items]
    if eps is None and norm is None:
        return None
    chosen = norm or "l2"
    if eps is None:
        family = dataset.partition(":")[0] if isinstance(dataset, str) else ""
        return [(chosen, list(default_attack_eps(family, chosen)))]
    return [(chosen, radii_value(eps, "eps"))]


def _threat(item: Any) -> tuple[str, list[float]]:
    if isinstance(item, str):
        norm, sep, radii = item.partition(":")
        if not sep or norm.strip() not in NORMS:
            raise BenchError(
                f"threats: {item!r}: write NORM:EPS[,EPS...] with NORM l2 or linf, e.g. 'l2:0.5,1' or 'linf:4/255'"
            )
        return norm.strip(), parse_eps(radii, f"threats: {item!r}")
    if not isinstance(item, (list, tuple)) or len(item) != 2 or item[0] not in NORMS:
        raise BenchError(
            f"threats: {item!r} is not a threat model; give (norm, radii) with norm 'l2' or 'linf', e.g. ('l2', [0.5, 1])"
        )
    return item[0], radii_value(item[1], f"threats: {item[0]} radii")


def _out(out: Any) -> Path | None:
    if out is None:
        return None
    if isinstance(out, bool) or not isinstance(out, (str, os.PathLike)):
        raise BenchError(
            f"out={out!r}: give a folder path, e.g. out='results/my-run', or leave it out (nothing is written)"
        )
    if not str(out).strip():
        raise BenchError(
            "out='' is empty; give a folder, e.g. out='results/my-run', or leave it out (nothing is written)"
        )
    return Path(out).expanduser()
