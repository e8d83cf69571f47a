"""The files of a run folder: scores.csv/.md/.tex, triplets.csv, each diagnostic's CSV (and the
histogram figure), written alike after a run and by ``run_bench.py report DIR...``."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from lipsim_bench.errors import BenchError
from lipsim_bench.formatting import format_eps
from lipsim_bench.io import atomic_write_text
from lipsim_bench.report.certificates_table import certificates_markdown, certificates_table
from lipsim_bench.report.collect import Collected, read_records
from lipsim_bench.report.masking import stronger_attack_notes
from lipsim_bench.report.paired import compare_metrics, write_comparison
from lipsim_bench.report.seeds import write_seeds
from lipsim_bench.report.tables import (
    TablesDocument,
    headline_split,
    legacy_kind,
    provenance_line,
    render_tables,
)
from lipsim_bench.tasks.base import DEFAULT_TASK, TaskInfo

#: The per-item CSVs' first columns, whatever the task; the task's own columns (``Task.row_columns``) follow
ITEM_LEAD_COLUMNS = ("metric", "dataset", "split", "group", "evaluation", "kind", "norm", "eps")


def monotonicity_notes(scores: pd.DataFrame, split: str) -> list[str]:
    """Robust and certified scores must not rise with eps; a rise is reported, never hidden."""
    lines = []
    kinds = scores["kind"] if "kind" in scores.columns else scores["evaluation"].map(legacy_kind)
    rows = scores[(scores["split"] == split) & kinds.isin(["attack", "certificate"])]
    for (metric, evaluation, norm), part in rows.groupby(["metric", "evaluation", "norm"], sort=False):
        part = part.sort_values("eps")
        rises = [(a, b) for a, b in zip(part.itertuples(), part.iloc[1:].itertuples()) if b.score > a.score + 1e-9]
        for a, b in rises:
            lines.append(
                f"WARNING: {metric} {evaluation} {norm}: score rises with eps ({a.score:.2f} at {format_eps(a.eps)} -> "
                f"{b.score:.2f} at {format_eps(b.eps)}); the attack is weaker at the larger eps: try more --restarts or --steps"
            )
    return lines


def write_outputs(out_dir: Path, dataset: str, split: str, collected: Collected, provenance: str) -> TablesDocument:
    """Write every output of a run folder from every record it holds (all its runs', not only this one's:
    a run of a subset of metrics or with other settings never hides cells that are already there)."""
    if (out_dir / "records").is_dir() and any((out_dir / "records").glob("*.json")):
        collected = read_records([out_dir])
    others = [pair for pair in table_splits(collected.scores) if pair[0] != dataset]
    own = [(dataset, split)] if not collected.scores.empty and (collected.scores["dataset"] == dataset).any() else []
    return _write(out_dir, own + others, collected, provenance)


#: The table files, removed where a folder has no scores (left behind, they would show numbers no record holds).
TABLE_FILES = ("scores.csv", "scores.md", "scores.tex", "triplets.csv")  # and each task's per-item CSV


def _write(out_dir: Path, tables: list[tuple[str, str]], collected: Collected, provenance: str) -> TablesDocument:
    """Diagnostics, scores.csv, triplets.csv, and one table per (dataset, split) in scores.md/.tex.

    The document lists the files it wrote; without scores its text says why (the records' notes)."""
    written: list[str] = []
    for name, frame in collected.diagnostics.items():
        atomic_write_text(out_dir / name, frame.to_csv(index=False))
        written.append(name)
    if collected.scores.empty or not tables:
        written += draw_figures(out_dir, collected)
        for name in TABLE_FILES + ("certificates.md",):
            if (out_dir / "records").is_dir() and (out_dir / name).is_file():  # only a run folder's own tables
                (out_dir / name).unlink()
        why = "; ".join(collected.notes)
        text = (
            f"no scores (diagnostics only: {', '.join(written)})" + (f"; {why}" if why else "")
            if written
            else f"no scores (nothing to tabulate): {why or 'the records hold no scores'}"
        )
        return TablesDocument(pd.DataFrame(), text, "", written)
    scores = collected.scores
    atomic_write_text(out_dir / "scores.csv", scores.to_csv(index=False))
    item_files = write_item_rows(out_dir, collected)
    notes = collected.notes + stronger_attack_notes(scores, collected.triplets)  # columns of one attack, more steps
    documents = [
        _document(
            scores, dataset, split, collected.notes_of(dataset, notes), provenance, len(tables), collected.task(dataset)
        )
        for dataset, split in tables
    ]
    document = (
        documents[0]
        if len(documents) == 1
        else TablesDocument(
            documents[0].table, "\n\n".join(d.markdown for d in documents), "\n\n".join(d.latex for d in documents)
        )
    )
    atomic_write_text(out_dir / "scores.md", document.markdown + "\n")
    atomic_write_text(out_dir / "scores.tex", document.latex + "\n")
    written = ["scores.csv", "scores.md", "scores.tex"] + item_files + written
    written += write_seeds(out_dir, scores)  # seeds.csv/.md: the spread over seeds of cells run under several
    if _write_certificates(out_dir, tables, collected):
        written.append("certificates.md")
    written += draw_figures(out_dir, collected)
    document.files = written
    return document


def write_item_rows(out_dir: Path, collected: Collected) -> list[str]:
    """The per-item rows, one CSV per task (``triplets.csv``, ``queries.csv``, ...), the task's columns first; a
    file of a task the records no longer hold is removed (left behind, it would show rows no record holds)."""
    rows, written = collected.triplets, []
    datasets = rows["dataset"] if len(rows) and "dataset" in rows.columns else pd.Series(dtype=object)
    by_file: dict[str, tuple[TaskInfo, list[str]]] = {}
    for dataset in dict.fromkeys(datasets):
        info = collected.task(str(dataset))
        by_file.setdefault(info.rows_file, (info, []))[1].append(dataset)
    for name, (info, members) in by_file.items():
        part = rows[datasets.isin(members)].dropna(axis=1, how="all") if len(by_file) > 1 else rows
        order = [*ITEM_LEAD_COLUMNS, *info.row_columns]
        part = part[[c for c in order if c in part.columns] + [c for c in part.columns if c not in order]]
        atomic_write_text(out_dir / name, part.to_csv(index=False))
        written.append(name)
    for name in {TaskInfo.from_dict(None).rows_file, *(i.rows_file for i in collected.tasks.values())} - set(by_file):
        if (out_dir / name).is_file():
            (out_dir / name).unlink()
    return written


def draw_figures(out_dir: Path, collected: Collected) -> list[str]:
    """Every figure the records' evaluations declare (``Evaluation.figures``), drawn from their rows, after the tables:
    a figure that cannot be drawn here (its plugin not loaded, its images not on this machine) is one warning line
    naming it and the fix, and the tables and other figures stand."""
    import importlib

    written: list[str] = []
    for path, rows in collected.figures.items():
        module, _, function = path.partition(":")
        try:
            draw = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError) as exc:
            why = f"cannot be loaded ({exc}); load the plugin that defines it (--plugin FILE.py or --import MODULE)"
        else:
            try:
                written += list(draw(out_dir, rows))
                continue
            except BenchError as exc:
                why = str(exc)
        print(f"warning: figure {path} not drawn: {why}", file=sys.stderr)
    return written


def _write_certificates(out_dir: Path, tables: list[tuple[str, str]], collected: Collected) -> bool:
    """certificates.md where a run compares several certificates (Lipschitz, smoothing at each sigma)."""
    parts = []
    scores, notes = collected.scores, collected.notes
    for dataset, split in tables:
        own = scores[scores["dataset"] == dataset] if "dataset" in scores.columns else scores
        task = collected.task(dataset)
        table = certificates_table(own, split, collected.ranks, two_afc=task.name == DEFAULT_TASK)
        if table.index.get_level_values("certificate").nunique() < 2:
            continue
        shown = own[(own["split"] == split) & own["metric"].isin(table.index.get_level_values("metric"))]
        sizes = ", ".join(str(n) for n in sorted({int(v) for v in shown["n"].dropna()}))
        title = (
            f"Certified {task.score} (%) on {dataset} / {split}, n = {sizes} {task.items}, by certificate: at radius r, "
            f"a {task.item} counts where its certified radius exceeds r (the worst case elsewhere); smoothing's column 0 "
            "is the smoothed metric's own score"
        )
        mixed = (
            [
                f"WARNING: these rows were computed on different numbers of {task.items} ({sizes}); compare only rows of the "
                "same n (scores.md marks which cells differ)"
            ]
            if "," in sizes
            else []
        )
        own_notes = collected.kind_notes.get("certificate", [])  # the certificates' own lines, by the records' kind
        footer = mixed + [
            line
            for line in collected.notes_of(dataset, notes)
            if line.startswith((f"{task.items}:", "WARNING")) or line in own_notes
        ]
        parts.append(certificates_markdown(table, title, footer))
    path = out_dir / "certificates.md"
    if parts:
        atomic_write_text(path, "\n\n".join(parts) + "\n")
    elif path.is_file():
        path.unlink()  # a rerun without several certificates must not leave an old comparison behind
    return bool(parts)


def _document(
    scores: pd.DataFrame, dataset: str, split: str, notes: list[str], provenance: str, count: int, task: TaskInfo
) -> TablesDocument:
    """One dataset's table; beside others, it says so (a table per dataset, never one mixing them)."""
    own = scores[scores["dataset"] == dataset] if "dataset" in scores.columns else scores
    footer = notes + monotonicity_notes(own, split)
    if count > 1:
        footer.append(f"the records hold {count} datasets: one table each; this one is {dataset} only")
    label = f"tab:{task.name}" if count == 1 else f"tab:{task.name}-{dataset}"
    return render_tables(own, dataset, split, footer, provenance, label=label, task=task)


def table_splits(scores: pd.DataFrame) -> list[tuple[str, str]]:
    """(dataset, headline split) for each dataset of the scores, in their order."""
    if scores.empty:
        return []
    return [(str(d), headline_split(scores[scores["dataset"] == d])) for d in dict.fromkeys(scores["dataset"])]


def report_runs(
    run_dirs: list[Path],
    out_dir: Path,
    metrics: list[str] | None = None,
    evaluations: list[str] | None = None,
    compare: tuple[str, str] | None = None,
) -> TablesDocument:
    """Write the tables of the merged records of ``run_dirs`` (of ``metrics`` and ``evaluations`` when given)
    into ``out_dir``: one per dataset they hold; with ``compare`` (A, B), the paired differences of A and B
    beside them (checked before anything is written)."""
    collected = read_records(run_dirs, metrics, evaluations)
    comparison = compare_metrics(collected, *compare) if compare else None
    sources = "; ".join(provenance_line(folder) for folder in collected.records_dirs)
    document = _write(out_dir, table_splits(collected.scores), collected, sources)
    if comparison is not None:
        document.files += write_comparison(out_dir, comparison)
        document.comparison = comparison.markdown
    return document
