"""The retrieval examples figure (retrieval_examples.png / .pdf): for a few queries and each metric, the clean query
with its top-5 gallery items, then the adversarial query with its top-5 (relevant items framed green, others red).

Declared by ``recall-apgd`` (``Evaluation.figures``): :func:`draw` gets the attack's per-query rows (``top5`` and
``adv_top5``, space-joined gallery ids) and reads the images again from the run's dataset (rebuilt from a record's
``config.dataset``, checked to be the content its unit keys name, as the 2AFC examples figure does). The adversarial
query comes from the attack unit's stored ``adversarial`` tensors when the run kept them (``--save-adversarial``);
otherwise its slot shows the clean query with a note, and its neighbours are still the attacked ones. A success
carried from a smaller radius (rows: ``carried``, not ``attacked``) is the query found there: it is read from that
radius's unit (the same metric and evaluation), captioned "found at l2 0.5", or noted as not stored there.

Choices, all deterministic: the radius with the most flipped (query, metric) pairs (l2 before linf, then the
smaller radius); the queries flipped for some metric first, then the others, in dataset order; three of them
(a row per metric: three queries of the five bundled metrics are 15 rows, about 13 inches tall; four were 18).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from lipsim_bench.datasets import create_dataset
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.adversarial import ADVERSARIAL, by_position
from lipsim_bench.formatting import format_eps
from lipsim_bench.report.examples import read_run
from lipsim_bench.report.figure_style import STYLE, norm_label, save_figure
from lipsim_bench.run.records import RecordStore, Unit

STEM = "retrieval_examples"
QUERIES = 3  # queries shown (a row per metric each)
TOP = 5  # neighbours shown per query
NOT_STORED = "adversarial image not stored: rerun with --save-adversarial"
NOT_ATTACKED = "not attacked (a miss before the attack)"
PROVEN = "not attacked (robust by proof: certified beyond the radius)"
RERUN = "rerun with --save-adversarial"
RELEVANT, IRRELEVANT, QUIET = "#2e7d32", "#c62828", "0.35"
PANEL_IN = 0.62  # one image's width and height
LABEL_IN = 0.22  # the gallery ids under a row
NOTE_CHARS = 16  # a note's line on a query panel
NEEDED = ("id", "metric", "top5", "adv_top5", "norm", "eps")


@dataclass
class Shown:
    """One metric on one query: the clean and adversarial query, each with its top-5 gallery indices."""

    query_id: str
    metric: str
    clean: Tensor  # (C, H, W) in [0, 1]
    adversarial: Tensor | None  # None: not stored (or not attacked); the clean query is drawn in its place
    note: str | None
    top: list[int]
    adv_top: list[int]
    relevant: set[int]
    flipped: bool
    found_at: str | None = None  # a carried success: the radius its adversarial query was found at ("l2 0.5")


@dataclass
class RetrievalExamples:
    """What the figure draws, with the words of its title."""

    evaluation: str
    norm: str
    eps: float
    dataset: str
    split: str
    n: int
    flipped: int  # flipped (query, metric) pairs at this radius
    shown: list[Shown]
    gallery_ids: list[str]
    images: dict[int, Tensor]  # the shown gallery items, by index


def draw(run_dir: Path, rows: pd.DataFrame) -> list[str]:
    """retrieval_examples.png/.pdf in ``run_dir`` from the attack's rows; nothing when they hold no top-5."""
    if rows.empty or not set(NEEDED) <= set(rows.columns):
        return []
    examples = collect(Path(run_dir), rows, QUERIES)
    save_figure(retrieval_figure(examples), Path(run_dir) / STEM, ("png", "pdf"))
    return [f"{STEM}.png", f"{STEM}.pdf"]


def flipped_column(rows: pd.DataFrame) -> pd.Series:
    """Whether the attack changed each query's outcome: the rows' ``flipped``, else a changed top-1."""
    if "flipped" in rows.columns:
        return rows["flipped"].astype(str).str.lower().isin(("true", "1", "1.0"))
    return rows["top5"].astype(str).str.split().str[0] != rows["adv_top5"].astype(str).str.split().str[0]


def chosen_cell(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of one dataset, split and radius: the first dataset and split, the radius with most flips."""
    rows = first_data(rows)
    cells = []
    for (norm, eps), part in rows.groupby(["norm", "eps"], sort=False):
        cells.append(((int(part["_flipped"].sum()), norm == "l2", -float(eps)), part))
    return max(cells, key=lambda c: c[0])[1]


def first_data(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the first dataset and split (every radius), with ``_flipped`` and ids as text."""
    rows = rows.assign(_flipped=flipped_column(rows), id=rows["id"].astype(str))
    first = rows.iloc[0]
    for k in (k for k in ("dataset", "split") if k in rows.columns):
        rows = rows[rows[k] == first[k]]
    return rows.reset_index(drop=True)


def found_at(rows: pd.DataFrame, row: pd.Series) -> pd.DataFrame | None:
    """The row (as a one-row frame) of the smaller radius where ``row``'s carried success was found: the radii of
    its metric, norm and query below its own, largest first, down to the first one not carried; None if absent."""
    same = rows[(rows["metric"] == row["metric"]) & (rows["id"] == row["id"]) & (rows["norm"] == row["norm"])]
    for i in same.index[np.argsort(-same["eps"].astype(float).to_numpy(), kind="stable")]:
        if float(same.at[i, "eps"]) < float(row["eps"]) and not truthy(same.at[i, "carried"]):
            return same.loc[[i]] if truthy(same.at[i, "_flipped"]) else None
    return None


def truthy(value: Any) -> bool:
    """A boolean cell as computed or read back from CSV."""
    return value is True or str(value).strip().lower() in ("true", "1", "1.0")


def chosen_queries(cell: pd.DataFrame, order: list[str], count: int = QUERIES) -> list[str]:
    """Query ids in dataset order, those flipped for some metric first."""
    flipped = set(cell.loc[cell["_flipped"], "id"])
    present = set(cell["id"])
    ids = [q for q in order if q in present]
    return ([q for q in ids if q in flipped] + [q for q in ids if q not in flipped])[:count]


def matching_record(
    records: list[tuple[dict[str, Any], pd.DataFrame, Path]], metric: str, cell: pd.DataFrame
) -> dict[str, Any] | None:
    """The stored record of the attack unit behind ``metric``'s rows of the cell (its evaluation and radius)."""
    first = cell.iloc[0]
    evaluation = str(first["evaluation"]) if "evaluation" in cell.columns else None
    for record, _, _ in records:
        unit, threat = record["unit"], record.get("threat") or {}
        name = unit["metric"]
        if metric != name and not metric.startswith(f"{name} ["):  # a variant: "metric [settings]"
            continue
        if evaluation is not None and evaluation not in (record["evaluation"].get("name"), unit["evaluation"]):
            continue
        if threat.get("norm") != first["norm"] or not math.isclose(float(threat.get("eps", -1)), float(first["eps"])):
            continue
        if all(unit.get(k) == first[k] for k in ("dataset", "split") if k in cell.columns):
            return record
    return None


def run_data(record: dict[str, Any]) -> Any:
    """The run's queries and gallery, checked to be the content its unit keys name."""
    config = record.get("config") or {}
    spec, split = str(config.get("dataset") or record["unit"]["dataset"]), record["unit"]["split"]
    try:
        data = create_dataset(spec, split).head(config.get("n")).every(int(config.get("every") or 1))
    except BenchError as exc:
        raise BenchError(f"{STEM}.png needs the run's images: {exc}") from None
    if not hasattr(data, "gallery_images"):
        raise BenchError(f"{STEM}.png: {spec} is not a retrieval dataset (it has no gallery)")
    if data.fingerprint() != record["unit"]["settings"].get("data"):
        raise BenchError(
            f"{STEM}.png: the images of {spec} / {split} here are not those the run used (their content differs "
            "from its records' key); draw it where its dataset is, or rerun it here"
        )
    return data


def collect(run_dir: Path, rows: pd.DataFrame, count: int = QUERIES) -> RetrievalExamples:
    """The figure's content: the chosen radius and queries, their images and each metric's neighbours."""
    cell = chosen_cell(rows)
    metrics = list(dict.fromkeys(cell["metric"]))
    records = read_run(run_dir) if (run_dir / "records").is_dir() else []
    found = {m: matching_record(records, m, cell) for m in metrics}
    record = next((r for r in found.values() if r is not None), None)
    if record is None:
        raise BenchError(
            f"{STEM}.png: no stored record of {', '.join(metrics)} in {run_dir}/records (the figure reads the records "
            "of the folder it is drawn in); draw it with `run_bench.py report RUN` into the run folder itself"
        )
    data = run_data(record)
    position = {str(q.id): i for i, q in enumerate(data.records)}
    gallery_ids = [str(g) for g in data.gallery_ids]
    index = {g: i for i, g in enumerate(gallery_ids)}
    store = RecordStore(run_dir)
    stored = {m: load_adversarial(store, r) for m, r in found.items()}
    every = first_data(rows)
    shown = []
    for query_id in chosen_queries(cell, list(position), count):
        item = data[position[query_id]]
        relevant = {int(i) for i in np.flatnonzero(np.asarray(item["relevant"]))}
        for metric in metrics:
            part = cell[(cell["metric"] == metric) & (cell["id"] == query_id)]
            if part.empty:
                continue
            row = part.iloc[0]
            x_adv, note, origin = adversarial_query(row, position[query_id], stored[metric], every, records, store)
            top, adv_top = (neighbours(str(row[c]), index, query_id) for c in ("top5", "adv_top5"))
            shown.append(
                Shown(
                    query_id, metric, item["query"], x_adv, note, top, adv_top, relevant, bool(row["_flipped"]), origin
                )
            )
    needed = sorted({g for s in shown for g in (*s.top, *s.adv_top)})
    images = dict(zip(needed, data.gallery_images(needed))) if needed else {}
    first = cell.iloc[0]
    return RetrievalExamples(
        str(first.get("evaluation", "attack")), str(first["norm"]), float(first["eps"]), str(record["unit"]["dataset"]),
        str(record["unit"]["split"]), len(data), int(cell["_flipped"].sum()), shown, gallery_ids, images,
    )  # fmt: skip


def adversarial_query(
    row: pd.Series,
    position: int,
    stored: dict[int, Tensor],
    every: pd.DataFrame,
    records: list[tuple[dict[str, Any], pd.DataFrame, Path]],
    store: RecordStore,
) -> tuple[Tensor | None, str | None, str | None]:
    """(the adversarial query or None, the note on its panel, the radius it was found at when carried)."""
    if "attacked" not in row.index or truthy(row["attacked"]):
        x_adv = stored.get(position)
        return x_adv, None if x_adv is not None else NOT_STORED, None
    if truthy(row.get("carried", False)):
        origin = found_at(every, row)
        if origin is None:
            return None, "found at a smaller radius (its rows are not in this run)", None
        radius = f"{origin.iloc[0]['norm']} {format_eps(float(origin.iloc[0]['eps']))}"
        x_adv = load_adversarial(store, matching_record(records, str(row["metric"]), origin)).get(position)
        return x_adv, None if x_adv is not None else f"found at {radius} (not stored: {RERUN})", radius
    return None, PROVEN if truthy(row.get("proven", False)) else NOT_ATTACKED, None


def neighbours(text: str, index: dict[str, int], query_id: str) -> list[int]:
    """Gallery indices of a space-joined id list (the first TOP), each checked to be in the run's gallery."""
    out = []
    for gallery_id in text.split()[:TOP]:
        if gallery_id not in index:
            raise BenchError(
                f"{STEM}.png: query {query_id}'s neighbour {gallery_id!r} is not in the run's gallery; "
                "the rows and the dataset differ, rerun the run"
            )
        out.append(index[gallery_id])
    return out


def load_adversarial(store: RecordStore, record: dict[str, Any] | None) -> dict[int, Tensor]:
    """The adversarial queries a unit stored, by dataset position ({} when it kept none)."""
    if record is None:
        return {}
    tensors = store.load_artifact(Unit(**record["unit"]), ADVERSARIAL)
    return by_position(tensors) if tensors else {}


# -- drawing -----------------------------------------------------------------------------------------------------


def to_rgb(image: Tensor) -> np.ndarray:
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).numpy()


def frame(ax: Axes, colour: str, width: float) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set(visible=True, color=colour, linewidth=width)


def wrapped(note: str) -> str:
    """A note in lines that fit a panel, a new line after its colon."""
    return ":\n".join(
        textwrap.fill(part, NOTE_CHARS, break_on_hyphens=False, break_long_words=False) for part in note.split(": ")
    )


def draw_query(ax: Axes, image: Tensor, note: str | None) -> None:
    ax.imshow(to_rgb(image), interpolation="nearest", alpha=0.45 if note else 1.0)
    frame(ax, QUIET, 0.8)
    if note:
        ax.text(0.5, 0.5, wrapped(note), ha="center", va="center", fontsize=4.5, transform=ax.transAxes)


def draw_neighbours(axes: list[Axes], top: list[int], shown: Shown, examples: RetrievalExamples) -> None:
    for ax, g in zip(axes, top):
        ax.imshow(to_rgb(examples.images[g]), interpolation="nearest")
        frame(ax, RELEVANT if g in shown.relevant else IRRELEVANT, 2.0)
        ax.set_xlabel(examples.gallery_ids[g], fontsize=5, labelpad=1)
    for ax in axes[len(top) :]:
        ax.set_visible(False)


def draw_row(axes: list[Axes], shown: Shown, examples: RetrievalExamples, first: bool) -> None:
    """Clean query and its top-5, a gap, the adversarial query and its top-5."""
    draw_query(axes[0], shown.clean, None)
    draw_neighbours(axes[1 : 1 + TOP], shown.top, shown, examples)
    axes[1 + TOP].set_visible(False)
    adversarial = shown.adversarial if shown.adversarial is not None else shown.clean
    draw_query(axes[2 + TOP], adversarial, shown.note)
    if shown.found_at and shown.adversarial is not None:
        axes[2 + TOP].set_xlabel(f"found at {shown.found_at}", fontsize=5, labelpad=1)
    draw_neighbours(axes[3 + TOP :], shown.adv_top, shown, examples)
    flipped = "\n(flipped)" if shown.flipped else ""
    axes[0].set_ylabel(f"{shown.query_id}\n{shown.metric}{flipped}", fontsize=6, labelpad=3,
                       color=IRRELEVANT if shown.flipped else "black")  # fmt: skip
    if first:
        axes[0].set_title("query", fontsize=7)
        axes[2 + TOP].set_title("adversarial", fontsize=7)
        for i in range(TOP):
            axes[1 + i].set_title(f"#{i + 1}", fontsize=7)
            axes[3 + TOP + i].set_title(f"#{i + 1}", fontsize=7)


def retrieval_figure(examples: RetrievalExamples) -> Figure:
    """A row per (query, metric); columns: query, its top-5, a gap, the adversarial query, its top-5."""
    columns = 2 * (1 + TOP) + 1
    ratios = [1.0] * (1 + TOP) + [0.25] + [1.0] * (1 + TOP)
    rows = max(1, len(examples.shown))
    width = PANEL_IN * sum(ratios) + 0.9
    height = (PANEL_IN + LABEL_IN) * rows + 0.8
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        grid = fig.subplots(rows, columns, squeeze=False, gridspec_kw={"width_ratios": ratios})
        for r, shown in enumerate(examples.shown):
            draw_row(list(grid[r]), shown, examples, r == 0)
        if not examples.shown:
            for ax in grid.flat:
                ax.set_visible(False)
        fig.get_layout_engine().set(w_pad=0.02, h_pad=0.04, wspace=0.03, hspace=0.05)
        fig.suptitle(title(examples), fontsize=7.5)
    return fig


def title(examples: RetrievalExamples) -> str:
    """Attack, radius, data and n; how the queries were picked; how to read the frames."""
    queries = len(dict.fromkeys(s.query_id for s in examples.shown))
    picked = (
        f"{examples.flipped} (query, metric) pairs flipped at this radius; {queries} queries shown, flipped ones first"
        if examples.flipped
        else f"no query flipped at this radius; the first {queries} shown"
    )
    missing = sum(s.note is not None and RERUN in s.note for s in examples.shown)
    stored = f"; {missing} adversarial image(s) not stored: {RERUN}" if missing else ""
    return (
        f"Retrieval under attack: {examples.evaluation}, {norm_label(examples.norm)} ε = {format_eps(examples.eps)}; "
        f"{examples.dataset} / {examples.split}, n = {examples.n} queries\n{picked}{stored}\n"
        "left: the clean query and its top-5, right: the adversarial query and its top-5; "
        "green frame: relevant, red: not"
    )
