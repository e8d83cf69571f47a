"""Tables from score rows: the paper's layout, a row per metric and a column per evaluation and eps.

Columns are ordered by the evaluation's kind alone (clean, then attacks, then certificates), then
in the order the run listed them, then by eps: a new evaluation kind needs no change here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lipsim_bench.formatting import format_eps
from lipsim_bench.report.declared import add_declared_marks, declared_cells
from lipsim_bench.report.intervals import interval_footer
from lipsim_bench.report.mixing import mark_cells, marker_frame
from lipsim_bench.report.notes import condense_notes
from lipsim_bench.tasks.base import TaskInfo

KIND_ORDER = ("clean", "attack", "certificate", "diagnostic")


def column_label(evaluation: str, norm: object, eps: object) -> str:
    if (norm is None or (isinstance(norm, float) and math.isnan(norm))) and (
        eps is None or (isinstance(eps, float) and math.isnan(eps))
    ):
        return evaluation
    parts = [evaluation]
    if isinstance(norm, str) and norm:
        parts.append(norm)
    if eps is not None and not (isinstance(eps, float) and math.isnan(eps)):
        parts.append(format_eps(float(eps)))
    return " ".join(parts)


def _kind_rank(kind: object) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def scores_table(scores: pd.DataFrame, split: str, value: str = "score") -> pd.DataFrame:
    """Pivot score rows of one split into the paper's table (metrics in their run order); ``value`` names the
    column shown (``ci_low``/``ci_high`` give the interval tables of the same layout)."""
    rows = scores[scores["split"] == split]
    if "kind" not in rows.columns:  # tables of older runs: infer the kind from the name
        rows = rows.assign(kind=[legacy_kind(e) for e in rows["evaluation"]])
    seen: dict[tuple, int] = {}
    for r in rows.itertuples():
        seen.setdefault((r.evaluation, r.norm if isinstance(r.norm, str) else None), len(seen))
    columns = sorted(
        {
            (
                r.evaluation,
                r.norm if isinstance(r.norm, str) else None,
                None if pd.isna(r.eps) else float(r.eps),
                r.kind,
            )
            for r in rows.itertuples()
        },
        key=lambda c: (_kind_rank(c[3]), seen[(c[0], c[1])], -1.0 if c[2] is None else c[2]),
    )
    table = pd.DataFrame(index=list(dict.fromkeys(rows["metric"])))
    for evaluation, norm, eps, _ in columns:
        match = rows[
            (rows["evaluation"] == evaluation)
            & (rows["eps"].isna() if eps is None else (rows["eps"] - eps).abs() < 1e-12)
        ]
        if norm is not None:
            match = match[match["norm"] == norm]
        table[column_label(evaluation, norm, eps)] = match.set_index("metric")[value]
    table.index.name = "metric"
    return table


def legacy_kind(evaluation: str) -> str:
    """The kind of an evaluation in CSVs written before kinds were recorded."""
    return {"natural": "clean", "certified": "certificate", "direct": "diagnostic"}.get(evaluation, "attack")


#: Bounds of the intervals: a cell reads ``96.00 [90.1, 98.9]`` (one decimal: their own uncertainty is larger)
INTERVAL_DIGITS = 1
Intervals = tuple[pd.DataFrame, pd.DataFrame]


def interval_tables(rows: pd.DataFrame, split: str) -> Intervals | None:
    """(low, high) tables in the score table's layout, or None where no cell has an interval (older scores.csv)."""
    if not {"ci_low", "ci_high"} <= set(rows.columns) or not rows["ci_low"].notna().any():
        return None
    return scores_table(rows, split, "ci_low"), scores_table(rows, split, "ci_high")


def _bounds(intervals: Intervals | None, name: object, column: object) -> str:
    """``[low, high]`` of a cell, or empty where it has none."""
    if intervals is None:
        return ""
    low, high = (t.at[name, column] if name in t.index and column in t.columns else float("nan") for t in intervals)
    return "" if pd.isna(low) or pd.isna(high) else f"[{low:.{INTERVAL_DIGITS}f}, {high:.{INTERVAL_DIGITS}f}]"


def _cells(
    table: pd.DataFrame,
    name: object,
    row: pd.Series,
    digits: int,
    markers: pd.DataFrame | None,
    mark: str,
    intervals: Intervals | None = None,
    joined: str = "{number} {interval}{mark}",
) -> list[str]:
    """A row's numbers, each with its interval and, where computed unlike the rest, its marker (``mark`` formats
    it); ``joined`` lays out the three (markdown: ``96.00 [90.1, 98.9] (a)``)."""
    numbers = ["" if pd.isna(v) else f"{v:.{digits}f}" for v in row]
    letters = markers.loc[name] if markers is not None and name in markers.index else pd.Series(dtype=object)
    cells = []
    for number, column in zip(numbers, table.columns):
        marked = mark.format(letters[column]) if number and letters.get(column) else ""
        bounds = _bounds(intervals, name, column) if number else ""
        cells.append(joined.format(number=number, interval=bounds, mark=marked) if bounds else number + marked)
    return cells


def to_markdown(
    table: pd.DataFrame, *, digits: int = 2, markers: pd.DataFrame | None = None, intervals: Intervals | None = None
) -> str:
    """A GitHub-markdown table; missing cells are blank, marked cells read "96.00 (a)", intervals follow the
    number in the cell: "96.00 [90.1, 98.9]"."""
    header = [table.index.name or ""] + list(table.columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]
    for name, row in table.iterrows():
        cells = _cells(table, name, row, digits, markers, " ({})", intervals)
        lines.append("| " + " | ".join([str(name)] + cells) + " |")
    return "\n".join(lines)


def to_latex(
    table: pd.DataFrame,
    *,
    digits: int = 2,
    caption: str = "",
    label: str = "tab:2afc",
    footer: list[str] | None = None,
    markers: pd.DataFrame | None = None,
    intervals: Intervals | None = None,
) -> str:
    """A booktabs table in the paper's layout, with grouped headers (natural | attack eps | certified eps).

    Columns of one evaluation and norm share a header cell spanning their eps; the footer lines
    (n, provenance, notes) go below the rule as a small note. A cell's interval is a second, smaller line
    under its number (a stacked cell, no extra package), so the columns stay as narrow as the numbers.
    """
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for column in table.columns:
        head, _, eps = column.rpartition(" ") if " " in column else (column, "", "")
        if groups and groups[-1][0] == head:
            groups[-1][1].append((column, eps))
        else:
            groups.append((head, [(column, eps)]))
    spec = "l" + "".join("c" * len(cols) for _, cols in groups)
    top = [_tex(table.index.name or "metric")]
    second = [""]
    rules = []
    col = 2
    for head, cols in groups:
        if not cols[0][1]:
            top += [_tex(head)] * len(cols)
            second += [""] * len(cols)
        else:
            top.append(rf"\multicolumn{{{len(cols)}}}{{c}}{{{_tex(head)}}}")
            second += [_tex(eps) for _, eps in cols]
            rules.append(rf"\cmidrule(lr){{{col}-{col + len(cols) - 1}}}")
        col += len(cols)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(top) + r" \\",
    ]
    if rules:
        lines += [" ".join(rules), " & ".join(second) + r" \\"]
    lines.append(r"\midrule")
    for name, row in table.iterrows():
        cells = _cells(table, name, row, digits, markers, r"\textsuperscript{{({})}}", intervals, STACKED)
        lines.append(" & ".join([_tex(str(name))] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if footer:
        lines.append(r"\par\smallskip\parbox{\linewidth}{\scriptsize " + r" \\ ".join(_tex(f) for f in footer) + "}")
    if caption:
        lines.append(rf"\caption{{{_tex(caption)}}}")
    lines += [rf"\label{{{label}}}", r"\end{table}"]
    return "\n".join(lines)


#: A LaTeX cell of two centred lines: the score, then its interval in \scriptsize
STACKED = r"\begin{{tabular}}[t]{{@{{}}c@{{}}}}{number}{mark}\\[-2pt]{{\scriptsize {interval}}}\end{{tabular}}"

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(c, c) for c in text)


@dataclass
class TablesDocument:
    """The table of one split in both formats, with title and footer."""

    table: pd.DataFrame
    markdown: str
    latex: str
    files: list[str] = field(default_factory=list)  # what writing it put in the folder (bench/report/outputs.py)
    comparison: str = ""  # report --compare A,B: the paired differences' table (bench/report/paired.py)


def _cell_label(row: object) -> str:
    """The column label of one score row, as :func:`scores_table` names it."""
    norm, eps = row.norm, row.eps
    return column_label(row.evaluation, norm if isinstance(norm, str) else None, None if pd.isna(eps) else float(eps))


def render_tables(
    scores: pd.DataFrame,
    dataset: str,
    split: str,
    notes: list[str],
    provenance: str,
    label: str = "tab:2afc",
    task: TaskInfo | None = None,
) -> TablesDocument:
    """scores.md / scores.tex content: title with n and seed, the table, notes, then the provenance footer.

    The title states the settings most cells share; a cell computed otherwise (another n, seed,
    option, weights) carries a marker that a footer line explains, so a row never mixes silently.
    """
    if "dataset" in scores.columns:
        scores = scores[scores["dataset"] == dataset]
    rows = scores[scores["split"] == split]
    if "kind" not in rows.columns:
        rows = rows.assign(kind=[legacy_kind(e) for e in rows["evaluation"]])
    table = scores_table(rows, split)
    task = task or TaskInfo.from_dict(None)
    marks = mark_cells(rows, _cell_label, task.items)
    seed = f", seed {marks.seed}" if marks.seed is not None else ""
    folded = rows["seeds"].dropna().astype(str) if "seeds" in rows.columns else pd.Series(dtype=str)
    if len(folded):  # a --seeds run: the seed-dependent cells are means over seeds (report/seeds.py)
        seed = f", seeds {folded.mode().iloc[0].replace(',', ', ')} (random cells: mean over seeds)"
    flagged = (
        f"; cells marked ({'), ('.join(dict.fromkeys(marks.cells.values()))}) differ, see below" if marks.cells else ""
    )
    title = (
        f"{task.score} (%) on {dataset} / {split}, n = {marks.n if marks.n is not None else '?'} {task.items}{seed}"
        f"{perturbed_phrase(rows, task.target)}{flagged}"
    )
    intervals = interval_tables(rows, split)
    shown = rows[rows["metric"].isin(table.index)] if intervals is not None else rows.iloc[:0]
    footer = (
        marks.footer
        + [line for line in [interval_footer(shown, task.items)] if line]
        + condense_notes(notes)
        + [provenance]
    )
    markers = add_declared_marks(marker_frame(table, marks), declared_cells(rows, notes, _cell_label))
    body = to_markdown(table, markers=markers, intervals=intervals)
    markdown = f"{title}\n\n{body}\n\n" + "\n".join(f"- {line}" for line in footer)
    latex = to_latex(table, caption=title, footer=footer, markers=markers, label=label, intervals=intervals)
    return TablesDocument(table, markdown, latex)


def perturbed_phrase(rows: pd.DataFrame, target: str = "") -> str:
    """``, perturbed: x0``: which image(s) the attacks and certificates moved (``--perturb``; ``ref`` is the paper's
    protocol), every target when a table mixes them; empty for a table with no attack or certified cell."""
    if "kind" in rows.columns and target:  # the task fixes what attacks move (a retrieval query)
        return f", perturbed: {target}" if rows["kind"].isin(("attack", "certificate")).any() else ""
    found = []
    if "kind" in rows.columns:
        rows = rows[rows["kind"].isin(("attack", "certificate"))]
    for raw in rows["settings"] if "settings" in rows.columns else []:
        settings = json.loads(raw) if isinstance(raw, str) and raw else {}
        found.append(str(settings.get("perturb") or "ref"))
    targets = list(dict.fromkeys(found))
    if not targets:
        return ""
    return f", perturbed: {', '.join(targets)}" + (" (per cell)" if len(targets) > 1 else "")


def _json_or_none(path: Path) -> object:
    """A record's JSON, or None when it cannot be read (such records are reported elsewhere, never here)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def provenance_line(records_dir: Path) -> str:
    """One line from the records' provenance: versions and commit(s) that produced the numbers.

    Reads every record file, usable or not (a damaged one is named elsewhere): any field may be odd."""
    records = [_json_or_none(p) for p in sorted(records_dir.glob("*.json"))] if records_dir.is_dir() else []
    prov = [r.get("provenance") for r in records if isinstance(r, dict) and isinstance(r.get("provenance"), dict)]
    if not prov:
        return "provenance: no records found"

    def values(get) -> str:
        found = sorted({str(v) for v in map(get, prov) if v})
        return ", ".join(found) or "unknown"

    def commit(p: dict) -> str:
        git = _dict(p.get("git"))
        return str(git.get("commit") or "")[:10] + ("+dirty" if git.get("dirty") else "")

    commits = values(commit)
    times = sorted(str(p["time"]) for p in prov if p.get("time"))
    span = f"{times[0]} to {times[-1]}" if times else "unknown"
    return (
        f"provenance: lipsim-bench {values(lambda p: p.get('lipsim_bench'))}, commit {commits}; "
        f"torch {values(lambda p: _dict(p.get('packages')).get('torch'))}, python {values(lambda p: p.get('python'))}; "
        f"{len(prov)} records computed {span}"
    )


def headline_split(scores: pd.DataFrame) -> str:
    """The split of the natural rows with the largest n; ties go to the last one written.

    score_rows writes a split's per-group rows (NIGHT's halves) before the headline row, so on
    a tie (one group under another name) the headline split is the later one.
    """
    clean = scores["kind"] == "clean" if "kind" in scores.columns else scores["evaluation"] == "natural"
    natural = scores[clean].reset_index(drop=True)
    if natural.empty:
        natural = scores.reset_index(drop=True)
    largest = natural[natural["n"] == natural["n"].max()]
    return str(largest["split"].iloc[-1])
