"""The files of a run folder: scores.csv/.md/.tex, triplets.csv, each diagnostic's CSV (and the
histogram figure), written alike after a run and by ``run_bench.py report DIR...``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.io import atomic_write_text
from bench.report.collect import Collected, read_records
from bench.report.tables import TablesDocument, headline_split, provenance_line, render_tables

TRIPLET_COLUMNS = ["metric", "dataset", "split", "group", "evaluation", "kind", "norm", "eps", "id", "p", "d0", "d1", "agreement", "correct"]


def monotonicity_notes(scores: pd.DataFrame, split: str) -> list[str]:
    """Robust and certified scores must not rise with eps; a rise is reported, never hidden."""
    lines = []
    kinds = scores["kind"] if "kind" in scores.columns else pd.Series("attack", index=scores.index).where(scores["evaluation"] != "natural", "clean")
    rows = scores[(scores["split"] == split) & kinds.isin(["attack", "certificate"])]
    for (metric, evaluation, norm), part in rows.groupby(["metric", "evaluation", "norm"], sort=False):
        part = part.sort_values("eps")
        rises = [(a, b) for a, b in zip(part.itertuples(), part.iloc[1:].itertuples()) if b.score > a.score + 1e-9]
        for a, b in rises:
            lines.append(
                f"WARNING: {metric} {evaluation} {norm}: score rises with eps ({a.score:.2f} at {a.eps:g} -> "
                f"{b.score:.2f} at {b.eps:g}); the attack is weaker at the larger eps: try more --restarts or --steps"
            )
    return lines


def write_outputs(out_dir: Path, dataset: str, split: str, collected: Collected, provenance: str) -> TablesDocument | None:
    """Write every output of a run folder; the tables' document (None when nothing is scored)."""
    for name, frame in collected.diagnostics.items():
        atomic_write_text(out_dir / name, frame.to_csv(index=False))
        from bench.report.plots import diagnostic_figure, save_figure  # matplotlib only when drawing

        figure = diagnostic_figure(name, frame)
        if figure is not None:
            save_figure(figure, out_dir / Path(name).stem, ("png", "pdf"))
    if collected.scores.empty:
        return None
    scores = collected.scores
    atomic_write_text(out_dir / "scores.csv", scores.to_csv(index=False))
    triplets = collected.triplets
    if len(triplets):
        extra = [c for c in triplets.columns if c not in TRIPLET_COLUMNS]
        triplets = triplets[[c for c in TRIPLET_COLUMNS if c in triplets.columns] + extra]
        atomic_write_text(out_dir / "triplets.csv", triplets.to_csv(index=False))
    footer = collected.notes + monotonicity_notes(scores, split)
    document = render_tables(scores, dataset, split, footer, provenance)
    atomic_write_text(out_dir / "scores.md", document.markdown + "\n")
    atomic_write_text(out_dir / "scores.tex", document.latex + "\n")
    return document


def report_runs(run_dirs: list[Path], out_dir: Path) -> TablesDocument | None:
    """Write the tables of the merged records of ``run_dirs`` into ``out_dir``."""
    collected = read_records(run_dirs)
    split = headline_split(collected.scores) if len(collected.scores) else collected.triplets.get("split", pd.Series(["?"])).iloc[0]
    datasets = collected.scores.loc[collected.scores["split"] == split, "dataset"] if len(collected.scores) else pd.Series(["?"])
    sources = "; ".join(provenance_line(folder) for folder in collected.records_dirs)
    return write_outputs(out_dir, str(datasets.iloc[0]), split, collected, sources)
