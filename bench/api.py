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

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lipsim_bench.report.collect import Entry, collect
from lipsim_bench.report.outputs import write_outputs
from lipsim_bench.report.tables import provenance_line, render_tables, scores_table
from lipsim_bench.run.distributed import Shard
from lipsim_bench.run.loop import RunOutcome, Store, run_units
from lipsim_bench.run.records import MemoryStore
from lipsim_bench.run.spec import RunSpec


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
    if outcome.out_dir is not None:
        document = write_outputs(outcome.out_dir, outcome.dataset, split, collected, provenance_line(outcome.out_dir / "records"))
        markdown = document.markdown if document is not None else "no scores (diagnostics only)"
    else:
        markdown = render_tables(collected.scores, outcome.dataset, split, collected.notes, "provenance: in memory").markdown if len(collected.scores) else ""
    table = scores_table(collected.scores, split) if len(collected.scores) else pd.DataFrame()
    reused = [str((r.record.get("provenance") or {}).get("time", "")) for r in outcome.reused]
    return Evaluated(collected.scores, table, collected.triplets, markdown, outcome.out_dir, collected.diagnostics,
                     [r.record for r in outcome.results], reused)


def run_and_report(spec: RunSpec, shard: Shard | None = None, store: Store | None = None) -> Evaluated | None:
    """Run every unit of ``spec`` and write (or, in memory, render) its tables; None on ranks > 0."""
    outcome = run_units(spec, shard, store)
    return None if outcome is None else _evaluated(outcome)


def evaluate(
    metric: str | Sequence[str],
    dataset: str = "sample",
    evaluations: Sequence[str] = ("natural",),
    *,
    split: str | None = None,
    n: int | None = None,
    every: int = 1,
    eps: Sequence[float] | None = None,
    norm: str = "l2",
    threats: Sequence[tuple[str, Sequence[float]]] | None = None,
    seed: int = 0,
    batch_size: int = 100,
    device: str = "cpu",
    out: str | Path | None = None,
    plugins: Sequence[str] = (),
    verify: bool = False,
    precision: str = "fp32",
    **options: dict[str, Any],
) -> Evaluated:
    """Evaluate one or more metrics; ``NAME={"option": value}`` sets an evaluation's options.

    ``eps`` (with ``norm``) or ``threats`` give the attacks' threat models (default: l2 at the
    dataset's radii); ``plugins`` are files or modules to load first, as ``--plugin``/``--import``;
    ``verify`` attacks even triplets proven robust (as ``--verify``); ``precision`` as ``--precision``;
    ``every`` keeps every k-th triplet (as ``--every``); a swept option takes a list (``smoothing={"sigma": [0.12, 0.25]}``).
    """
    from lipsim_bench.plugins import load_plugins

    load_plugins([p for p in plugins if p.endswith(".py")], [p for p in plugins if not p.endswith(".py")])
    metrics = [metric] if isinstance(metric, str) else list(metric)
    pairs = [(t[0], list(t[1])) for t in threats] if threats else ([(norm, list(eps))] if eps is not None else None)
    spec = RunSpec(metrics=metrics, dataset=dataset, split=split, n=n, every=every, evaluations=list(evaluations),
                   options={k: dict(v) for k, v in options.items()}, threats=pairs, batch_size=batch_size,
                   device=device, seed=seed, out=Path(out) if out is not None else None, verify=verify,
                   precision=precision)
    store = None if out is not None else MemoryStore()
    result = run_and_report(spec, None, store)
    assert result is not None  # one process
    return result
