"""The static site: index.html (a sortable table per protocol, the reported numbers apart), a page per metric
(its curves, every cell's provenance), static/ (CSS and the sorting script), img/ (PNG). No server, no network:
every page works opened from disk (file://)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from lipsim_bench.errors import BenchError
from lipsim_bench.formatting import format_eps
from lipsim_bench.io import atomic_write_text
from lipsim_bench.report.collect import Entry
from lipsim_bench.report.palette import metric_style
from lipsim_bench.site.model import Board, Cell, Column, Protocol, build_board, slug
from lipsim_bench.site.reported import Reported, read_published, with_reported
from lipsim_bench.site.transfer import TransferPanel, shade

HERE = Path(__file__).parent
#: Marks a folder as a site this command wrote, so a rebuild may clear its old pages (and nothing else's).
MARKER = "leaderboard.json"
OWN = ("index.html", "metrics", "img", "static", "transfer", MARKER)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )
    env.globals.update(
        column_groups=_column_groups,
        cells_of=_cells_of,
        shared=_shared,
        swatch=_swatch,
        shade=shade,
        format_eps=format_eps,
        panel_id=_panel_id,
    )
    return env


def _swatch(metric: str) -> Markup:
    """A small square in the metric's figure colour (bench/report/palette.py), as every figure draws it."""
    colour = escape(str(metric_style(metric)["color"]))
    return Markup(f'<span class="swatch" style="background-color: {colour}"></span>')


def _panel_id(panel: TransferPanel) -> str:
    return slug(f"{panel.attack}-{panel.norm}-{format_eps(panel.eps)}")


def _shared(rows: list[tuple[Column, Cell]], field: str) -> str | None:
    """The provenance field every cell of ``rows`` shares (said once above the table), else None."""
    values = {getattr(cell.provenance, field) if cell.provenance else None for _, cell in rows}
    return values.pop() if len(values) == 1 and None not in values else None


def _column_groups(protocol: Protocol) -> list[tuple[str, int]]:
    """Consecutive columns of one group (natural, robust, certified) as (group, count), for the header row."""
    groups: list[tuple[str, int]] = []
    for column in protocol.columns:
        if groups and groups[-1][0] == column.group:
            groups[-1] = (column.group, groups[-1][1] + 1)
        else:
            groups.append((column.group, 1))
    return groups


def _cells_of(protocol: Protocol, metric: str) -> list[tuple[Column, Cell]]:
    return [(c, cell) for c, cell in zip(protocol.columns, protocol.row(metric)) if cell is not None]


def prepare(out: Path) -> None:
    """Make ``out`` ready for a site, or say in one line why it cannot be: a folder that is not writable, or
    one that holds other files (never cleared: only a folder with this command's marker is rebuilt)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".{MARKER}.probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BenchError(f"--out {out}: cannot write there ({reason}); choose a writable folder") from None
    present = [p.name for p in out.iterdir()]
    if present and MARKER not in present:
        raise BenchError(
            f"--out {out} holds other files ({', '.join(sorted(present)[:3])}...) and no earlier site; "
            "give a new or empty folder, or the folder of an earlier leaderboard to rebuild it"
        )
    for name in OWN:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _data(board: Board, reported: Reported | None) -> dict[str, Any]:
    """The marker's content: what the site shows, by protocol (the numbers are in each run's scores.csv)."""
    return {
        "format": 1,
        "protocols": [
            {
                "slug": p.slug,
                "title": p.title,
                "runs": p.runs,
                "metrics": p.metrics,
                "columns": [c.label for c in p.columns],
                "transfer": [_panel_id(t) for t in p.transfer],
            }
            for p in board.protocols
        ],
        "reported": reported.path if reported else None,
    }


def write_site(board: Board, out: Path, reported: Reported | None, runs: list[str]) -> list[Path]:
    """Render every page of ``board`` into ``out`` (prepared by :func:`prepare`); the files written."""
    from lipsim_bench.site.figures import metric_figure  # matplotlib only when drawing

    env = _environment()
    common = {"runs": runs}
    written: list[Path] = []
    shutil.copytree(HERE / "static", out / "static")
    written += sorted((out / "static").iterdir())
    has_intervals = any(c.ci_low is not None for p in board.protocols for c in p.cells.values())
    index = env.get_template("index.html").render(
        root="", board=board, reported=reported, has_intervals=has_intervals, **common
    )
    atomic_write_text(out / "index.html", index)
    written.append(out / "index.html")
    for protocol in board.protocols:
        if protocol.transfer:
            html = env.get_template("transfer.html").render(
                root="../", protocol=protocol, metrics=board.metrics, **common
            )
            atomic_write_text(out / "transfer" / f"{protocol.slug}.html", html)
            written.append(out / "transfer" / f"{protocol.slug}.html")
    for metric, page in board.metrics.items():
        sections: list[tuple[Protocol, str | None]] = []
        for protocol in board.protocols:
            if metric not in protocol.metrics:
                continue
            image = f"{page}__{protocol.slug}.png"
            if metric_figure(protocol, metric, out / "img" / image):
                written.append(out / "img" / image)
            else:
                image = None
            sections.append((protocol, image))
        labels = list(
            dict.fromkeys(
                cell.provenance.env
                for protocol, _ in sections
                for _, cell in _cells_of(protocol, metric)
                if cell.provenance
            )
        )
        html = env.get_template("metric.html").render(
            root="../",
            metric=metric,
            sections=sections,
            conventions=board.conventions.get(metric, {}),
            reported_tables=reported.of_metric(metric) if reported else [],
            sources=reported.sources if reported else {},
            metrics=board.metrics,
            environments=board.environments,
            environment_labels=labels,
            **common,
        )
        atomic_write_text(out / "metrics" / f"{page}.html", html)
        written.append(out / "metrics" / f"{page}.html")
    atomic_write_text(out / MARKER, json.dumps(_data(board, reported), sort_keys=True, separators=(",", ":")) + "\n")
    written.append(out / MARKER)
    return written


def build_site(
    run_dirs: list[Path], out: Path, published: Path | None, submitted: Submissions | None = None
) -> list[Path]:
    """Read ``run_dirs``, the submitted entries (checked by the caller) and the published cells, then write the
    site into ``out``; the files written."""
    submitted = submitted or Submissions()
    board = build_board(run_dirs, submitted.records, submitted.notes)
    reported = read_published(published) if published is not None else None
    reported = with_reported(reported, submitted.sources, submitted.cells, ", ".join(submitted.reported))
    prepare(out)
    names = [d.resolve().name for d in run_dirs] + [label for _, label in submitted.records] + submitted.reported
    return write_site(board, out, reported, list(dict.fromkeys(names)))


@dataclass
class Submissions:
    """What entries add (read and checked by bench/submission/leaderboard.py): a re-evaluated entry's records
    with its label, a reported entry's sources and cells (published.json's shape), a line per entry left out."""

    records: list[tuple[Entry, str]] = field(default_factory=list)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)  # labels of the reported entries
    notes: list[str] = field(default_factory=list)


__all__ = ["Submissions", "build_site", "prepare", "write_site"]
