"""The triplets of the examples figure (the LipSim paper's Figure 1), from a run kept with ``--save-adversarial``.

Unlike the other figures this one needs more than the run's CSVs: the adversarial inputs its attack units stored
(``records/<stem>.adversarial.safetensors``) and the clean images, read again from the run's dataset (the data
layer sits below the report layer, so no model is built and no unit runs). The dataset's content must be the one
the run's unit keys name, and every shown perturbation's norm must be the one its rows stored: otherwise the
figure would put a perturbation beside an image it was not made for, so it refuses in one line.

Defaults are deterministic and pick what the figure is for: the attack radius where the metrics' scores differ
most, then the triplets flipped for some metrics but not for others (a metric fooled where another is not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from lipsim_bench.datasets import TwoAFCDataset, create_dataset
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.adversarial import ADVERSARIAL, by_position
from lipsim_bench.formatting import format_eps
from lipsim_bench.run.integrity import read_checked
from lipsim_bench.run.records import RECORD_FORMAT, RecordStore, Unit

#: The hint a run without stored examples gets (the other figures are drawn all the same).
HINT = (
    "examples.png: {run} keeps no adversarial examples; rerun its command with --save-adversarial "
    "(only the attack units are recomputed) to draw it"
)
#: A stored perturbation's norm may differ from its rows' by float32 rounding, never more.
NORM_RTOL, NORM_ATOL = 1e-4, 1e-6


@dataclass(frozen=True)
class ExampleOptions:
    """``plot --examples N --eps E --attack NAME``: how many triplets, at which radius, of which attack."""

    count: int = 3
    eps: float | None = None
    attack: str | None = None


@dataclass
class AttackUnit:
    """One stored attack unit of the run: its record, its rows by triplet id, and its artifact file."""

    record: dict[str, Any]
    rows: pd.DataFrame
    path: Path

    @property
    def metric(self) -> str:
        return str(self.record["unit"]["metric"])

    @property
    def attack(self) -> str:
        return str(self.record["evaluation"]["name"])

    @property
    def norm(self) -> str:
        return str(self.record["threat"]["norm"])

    @property
    def eps(self) -> float:
        return float(self.record["threat"]["eps"])

    @property
    def artifact(self) -> Path:
        return self.path.with_name(self.path.name[: -len(".json")] + f".{ADVERSARIAL}.safetensors")


@dataclass
class Panel:
    """One metric on one triplet: distances before and after, and the perturbation it was flipped (or not) by."""

    metric: str
    state: str  # attacked, carried (flip found at a smaller radius), proven (robust, not attacked), wrong, absent
    before: tuple[float, float] | None
    after: tuple[float, float]
    flipped: bool
    x_adv: Tensor | None = None  # the perturbed input as attacked: (C, H, W), or (3C, H, W) for --perturb all
    delta: Tensor | None = None
    l2: float = 0.0
    linf: float = 0.0
    from_eps: float | None = None  # the radius whose unit stored a carried flip's example


@dataclass
class Shown:
    """One triplet of the figure: its clean images, the human vote, and a panel per metric."""

    id: str
    p: float
    images: dict[str, Tensor]  # ref, x0, x1 in [0, 1]
    panels: list[Panel] = field(default_factory=list)


@dataclass
class Examples:
    """What the figure draws, with the words of its title."""

    attack: str
    norm: str
    eps: float
    perturb: str
    dataset: str
    split: str
    n: int
    metrics: list[str]
    shown: list[Shown]
    mixed: int  # triplets flipped for some metrics but not all of those that were right


def read_run(run_dir: Path) -> list[tuple[dict[str, Any], pd.DataFrame, Path]]:
    """Every readable record of the run folder with its rows by triplet id (the report's checks: checksum,
    rows, scores); an unreadable one is left out, as the tables leave it out."""
    found = []
    for path in sorted((run_dir / "records").glob("*.json")):
        checked = read_checked(path, RECORD_FORMAT)
        if not isinstance(checked, str) and "id" in checked[1].columns:  # a unit that did not apply has no rows
            record, rows = checked
            found.append((record, rows.assign(id=rows["id"].astype(str)).set_index("id"), path))
    return found


def attack_units(records: list[tuple[dict[str, Any], pd.DataFrame, Path]]) -> list[AttackUnit]:
    """The attack units that applied, in the run's order (then by radius)."""
    units = [
        AttackUnit(record, rows, path)
        for record, rows, path in records
        if record["evaluation"].get("kind") == "attack" and record.get("applies") and record.get("threat")
    ]
    return sorted(units, key=lambda u: (u.record.get("position", 0), u.eps))


def clean_rows(records: list[tuple[dict[str, Any], pd.DataFrame, Path]], unit: AttackUnit) -> pd.DataFrame | None:
    """The clean rows (d0, d1, correct before any attack) of the attack unit's metric and data, by triplet id."""
    same = {k: unit.record["unit"][k] for k in ("metric", "dataset", "split", "n")}
    for record, rows, _ in records:
        if record["evaluation"].get("kind") == "clean" and all(record["unit"].get(k) == v for k, v in same.items()):
            return rows
    return None


def candidate_cells(units: list[AttackUnit], options: ExampleOptions) -> tuple[str, list[tuple[str, float]]]:
    """The attack (the asked one, else the one with most stored examples) and its (norm, eps) cells to pick
    from (the asked radius, else all of them)."""
    kept = [u for u in units if u.artifact.is_file()]
    attacks = list(dict.fromkeys(u.attack for u in kept))
    if options.attack is not None and options.attack not in attacks:
        raise BenchError(f"--attack {options.attack}: no stored examples of it; the run kept: {', '.join(attacks)}")
    attack = options.attack or max(attacks, key=lambda a: (sum(u.attack == a for u in kept), -attacks.index(a)))
    cells = sorted({(u.norm, u.eps) for u in kept if u.attack == attack}, key=lambda c: (c[0] != "l2", c[1]))
    if options.eps is None:
        return attack, cells
    matching = [c for c in cells if math.isclose(c[1], options.eps, rel_tol=1e-9, abs_tol=1e-12)]
    if not matching:
        held = ", ".join(f"{n} {format_eps(e)}" for n, e in cells)
        raise BenchError(f"--eps {format_eps(options.eps)}: {attack} kept no examples there; it has {held}")
    return attack, matching[:1]


def cell_units(units: list[AttackUnit], attack: str, norm: str, eps: float) -> list[AttackUnit]:
    """One unit per metric (the newest, where a folder holds several) of an attack at one radius, in the run's
    metric order."""
    cell = [
        u
        for u in units
        if (u.attack, u.norm) == (attack, norm) and math.isclose(u.eps, eps, rel_tol=1e-9) and u.artifact.is_file()
    ]
    newest = {u.metric: u for u in sorted(cell, key=lambda u: u.record["provenance"].get("time_ns", 0))}
    return [newest[m] for m in dict.fromkeys(u.metric for u in cell)]


def spread(cell: list[AttackUnit]) -> float:
    """How far apart the metrics' attacked scores are (0 for one metric)."""
    scores = [float(u.rows["agreement"].mean()) for u in cell]
    return round(max(scores) - min(scores), 9)


def perturb_of(record: dict[str, Any], x_adv: Tensor, channels: int) -> str:
    """Which input the run perturbed: its record's word when it has one, else the stored shape's (3C: all)."""
    settings = record["unit"].get("settings") or {}
    for where in (record.get("config") or {}, settings, settings.get("options") or {}):
        if isinstance(where, dict) and where.get("perturb") in ("ref", "x0", "x1", "all"):
            return str(where["perturb"])
    return "all" if x_adv.dim() == 3 and x_adv.shape[0] == 3 * channels else "ref"


def target_image(images: dict[str, Tensor], perturb: str) -> Tensor:
    """The clean input an attack on ``perturb`` started from (the stacked triplet for ``all``)."""
    return torch.cat([images["ref"], images["x0"], images["x1"]]) if perturb == "all" else images[perturb]


def run_dataset(record: dict[str, Any]) -> TwoAFCDataset:
    """The run's triplets, checked to be the content its unit keys name (the same images, votes and order)."""
    config = record.get("config") or {}
    spec, split = str(config.get("dataset") or record["unit"]["dataset"]), record["unit"]["split"]
    try:
        data = create_dataset(spec, split).head(config.get("n")).every(int(config.get("every") or 1))
    except BenchError as exc:
        raise BenchError(f"examples.png needs the run's clean images: {exc}") from None
    if data.fingerprint() != record["unit"]["settings"].get("data"):
        raise BenchError(
            f"examples.png: the images of {spec} / {split} here are not those the run used (their content "
            "differs from its records' key); plot it where its dataset is, or rerun it here"
        )
    return data


class ExampleReader:
    """Stored adversarial inputs of the run's attack units, loaded once each, by dataset position."""

    def __init__(self, run_dir: Path, units: list[AttackUnit]) -> None:
        self.store, self.units, self._loaded = RecordStore(run_dir), units, {}

    def inputs(self, unit: AttackUnit) -> dict[int, Tensor]:
        if unit.path not in self._loaded:
            tensors = self.store.load_artifact(Unit(**unit.record["unit"]), ADVERSARIAL)
            self._loaded[unit.path] = by_position(tensors) if tensors else {}
        return self._loaded[unit.path]

    def carried_from(self, unit: AttackUnit, tid: str) -> AttackUnit | None:
        """The unit of a smaller radius (same metric, attack, norm) that attacked and flipped this triplet."""
        smaller = [
            u
            for u in self.units
            if (u.metric, u.attack, u.norm) == (unit.metric, unit.attack, unit.norm) and u.eps < unit.eps
        ]
        for u in sorted(smaller, key=lambda u: -u.eps):
            row = u.rows.loc[tid] if tid in u.rows.index else None
            if row is not None and bool(row["attacked"]) and bool(row["flipped"]):
                return u
        return None


def make_panel(
    reader: ExampleReader, unit: AttackUnit, clean: pd.DataFrame | None, tid: str, position: int, images: dict
) -> Panel:
    """One metric's panel; its perturbation's norm checked against the one its rows stored."""
    row = unit.rows.loc[tid]
    before = (float(clean.loc[tid, "d0"]), float(clean.loc[tid, "d1"])) if clean is not None else None
    after = (float(row["d0"]), float(row["d1"]))
    flipped = bool(row["flipped"])
    source, from_eps = unit, None
    if bool(row.get("carried", False)):
        source = reader.carried_from(unit, tid)
        from_eps = source.eps if source is not None else None
    attacked = bool(row.get("attacked", False)) or from_eps is not None
    if from_eps is not None or attacked:
        state = "carried" if from_eps is not None else "attacked"
    elif bool(row.get("proven", False)):
        state = "proven"
    else:
        state = "wrong" if clean is not None and not bool(clean.loc[tid, "correct"]) else "absent"
    panel = Panel(unit.metric, state, before, after, flipped, from_eps=from_eps)
    x_adv = reader.inputs(source).get(position) if attacked and source is not None else None
    if x_adv is None:
        if attacked:
            panel.state = "absent"
        return panel
    perturb = perturb_of(unit.record, x_adv, images["ref"].shape[0])
    delta = (x_adv.double() - target_image(images, perturb).double()).flatten()
    panel.x_adv, panel.delta = x_adv, x_adv - target_image(images, perturb)
    panel.l2, panel.linf = float(delta.norm()), float(delta.abs().max())
    stored = float(row["delta_norm"])
    mine = panel.l2 if unit.norm == "l2" else panel.linf
    if not math.isclose(mine, stored, rel_tol=NORM_RTOL, abs_tol=NORM_ATOL):
        raise BenchError(
            f"{source.artifact}: triplet {tid}'s perturbation has {unit.norm} norm {mine:.6g} against the clean "
            f"image but its rows stored {stored:.6g}; delete the file and rerun with --save-adversarial"
        )
    return panel


def ranked(units: list[AttackUnit], cleans: dict[str, pd.DataFrame | None]) -> tuple[list[str], int]:
    """Triplet ids, most informative first, and how many are mixed (flipped for some metrics, not all).

    Order: right for every metric before the attack; mixed; more metrics flipped (a single metric resisting,
    as LipSim does in the paper's figure); more metrics actually attacked; dataset order."""
    ids = [i for i in units[0].rows.index if all(i in u.rows.index for u in units)]
    keys, mixed = {}, 0
    for order, tid in enumerate(ids):
        right = [bool(cleans[u.metric].loc[tid, "correct"]) if cleans[u.metric] is not None else True for u in units]
        flips = sum(bool(u.rows.loc[tid, "flipped"]) for u in units)
        tried = sum(bool(u.rows.loc[tid, "attacked"]) or bool(u.rows.loc[tid, "carried"]) for u in units)
        is_mixed = 0 < flips < sum(right)
        mixed += is_mixed
        keys[tid] = (not all(right), not is_mixed, -flips, -tried, order)
    return sorted(ids, key=keys.__getitem__), mixed


def collect_examples(run_dir: Path, options: ExampleOptions = ExampleOptions()) -> Examples | str | None:
    """The figure's content; a one-line hint when the run kept no examples; None when it has no attack."""
    records = read_run(Path(run_dir))
    units = attack_units(records)
    if not units or options.count <= 0:
        return None
    if not any(u.artifact.is_file() for u in units):
        return HINT.format(run=run_dir)
    attack, cells = candidate_cells(units, options)
    choices = []  # the radius where the metrics differ most: on most triplets, then in score; then the smaller
    for norm, eps in cells:
        cell = cell_units(units, attack, norm, eps)
        cleans = {u.metric: clean_rows(records, u) for u in cell}
        order, mixed = ranked(cell, cleans)
        choices.append(((mixed, spread(cell), norm == "l2", -eps), (norm, eps, cell, cleans, order, mixed)))
    norm, eps, cell, cleans, order, mixed = max(choices, key=lambda c: c[0])[1]
    data = run_dataset(cell[0].record)
    position = {str(rec.id): i for i, rec in enumerate(data.records)}
    reader = ExampleReader(Path(run_dir), units)
    shown = []
    for tid in [t for t in order if t in position][: options.count]:
        item = data[position[tid]]
        images = {k: item[k] for k in ("ref", "x0", "x1")}
        panels = [make_panel(reader, u, cleans[u.metric], tid, position[tid], images) for u in cell]
        shown.append(Shown(tid, float(item["p"]), images, panels))
    first = cell[0]
    perturb = next(
        (perturb_of(first.record, p.x_adv, 3) for s in shown for p in s.panels if p.x_adv is not None), "ref"
    )
    return Examples(
        attack, norm, eps, perturb, first.record["unit"]["dataset"], first.record["unit"]["split"],
        len(data), [u.metric for u in cell], shown, mixed,
    )  # fmt: skip
