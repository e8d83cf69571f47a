"""Check 4 of ``validate``: the metric re-scored on the adversarial inputs an entry hands in.

RobustBench's practice for outside claims: the submitter hands in the inputs, anyone reruns the model on them.
Each stored ``x_adv`` (``records/<stem>.adversarial.safetensors``, bench/evaluations/adversarial.py) is embedded
again by the metric rebuilt from the registry, beside the clean images of the run's dataset (checked to be the
content the records' keys name), and must give the distances the unit's rows stored, hence their agreement and
flip; its perturbation must lie in the unit's eps ball (in its norm) and inside the image range. A flip carried
from a smaller radius is checked on the input that smaller radius stored. The rows no attack perturbed (natural
rows, and an attack unit's triplets it proved robust, carried nothing to, or that were wrong already) are
re-scored on their clean images alike, so an edited row there is caught too. Attacks on a GPU give distances a
little off the CPU's: distances are compared within ``DIST_RTOL``/``DIST_ATOL``, and an outcome only where the
two distances are further apart than that.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lipsim_bench.datasets import TwoAFCDataset, create_dataset
from lipsim_bench.devices import resolve_device
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.decided import as_bool
from lipsim_bench.evaluations.twoafc import TwoAFCClassifier, distances_from_logits, twoafc_agreement
from lipsim_bench.formatting import format_eps
from lipsim_bench.run.plan import RANDOM_WEIGHTS_ENV, build_metric, metric_weights_id
from lipsim_bench.submission.checks import Check, Loaded

DIST_RTOL, DIST_ATOL = 1e-3, 1e-5
#: A stored perturbation's norm against its rows' (float32 rounding), and the slack of the eps ball.
NORM_RTOL, NORM_ATOL = 1e-4, 1e-6
BALL_RTOL, BALL_ATOL = 1e-5, 1e-6
BATCH = 16


class Cannot(Exception):
    """The check cannot run here (no dataset, other weights); the message says what to give."""


@dataclass
class Task:
    """One stored row to re-score: the unit it belongs to and the input (its own, or a smaller radius's)."""

    unit: Loaded
    tid: str
    position: int
    source: Loaded
    x_adv: Tensor | None  # None: a row no attack perturbed, re-scored on its clean images
    row: pd.Series  # the unit's stored row of the triplet


def _task_name(record: dict[str, Any]) -> str:
    """The record's task (a record written before tasks is 2AFC's)."""
    task = record.get("task")
    return str(task.get("name") or "2afc") if isinstance(task, dict) else "2afc"


def _attack(loaded: Loaded) -> bool:
    record = loaded.record
    return record["evaluation"]["kind"] == "attack" and bool(record.get("applies")) and bool(record.get("threat"))


def _eps(loaded: Loaded) -> float:
    return float(loaded.record["threat"]["eps"])


def _norm(loaded: Loaded) -> str:
    return str(loaded.record["threat"]["norm"])


def _rows(loaded: Loaded) -> pd.DataFrame:
    return loaded.rows.assign(id=loaded.rows["id"].astype(str)).set_index("id")


def _tensors(path: Path, loaded: Loaded) -> dict[int, Tensor] | str:
    """The stored inputs by dataset position, or why they cannot be used."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            key = (handle.metadata() or {}).get("key")
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        return f"{path.name}: not a readable safetensors file ({exc})"
    if key != loaded.record["key"]:
        return f"{path.name}: stored for unit {key}, not for its record's unit {loaded.record['key']}"
    if set(tensors) != {"position", "x_adv"} or len(tensors["position"]) != len(tensors["x_adv"]):
        return f"{path.name}: holds {sorted(tensors)}, not one position per x_adv"
    return {int(p): x for p, x in zip(tensors["position"], tensors["x_adv"])}


def dataset_of(record: dict[str, Any], override: str | None) -> TwoAFCDataset:
    """The run's triplets (``--dataset`` where they are elsewhere), checked to be what the records' keys name."""
    config = record.get("config") or {}
    spec, split = override or str(config.get("dataset") or record["unit"]["dataset"]), record["unit"]["split"]
    try:
        data = create_dataset(spec, split).head(config.get("n")).every(int(config.get("every") or 1))
    except BenchError as exc:
        raise Cannot(
            f"the run's clean images are not here ({exc}); give --dataset NAME:ROOT, or --no-rescore"
        ) from None
    if data.fingerprint() != record["unit"]["settings"].get("data"):
        raise Cannot(
            f"the images of {spec} / {split} here are not those the run used (their content differs from the "
            "records' key); give --dataset NAME:ROOT of the run's data, or --no-rescore"
        )
    return data


def metric_of(entry: dict[str, Any], record: dict[str, Any], device: torch.device) -> Any:
    """The metric rebuilt from the registry, with the weights the records name (else the check cannot run)."""
    name, settings = entry["metric"].get("registry"), record["unit"]["settings"]
    if not name:
        raise Cannot("the entry names no registry metric to rebuild")
    seed = int(settings.get("seed") or 0)
    try:
        here = metric_weights_id(name, seed)
    except BenchError as exc:
        raise Cannot(f"metric {name} cannot be built here ({exc})") from None
    if here != settings.get("weights"):
        fix = (
            f"they were drawn at random ({RANDOM_WEIGHTS_ENV}=1, a test switch): set it to re-score"
            if str(settings.get("weights")).startswith("random-init")
            else "fetch those (`run_bench.py fetch`), or give --no-rescore"
        )
        raise Cannot(f"the weights of {name} here are {here}, the records' {settings.get('weights')}; {fix}")
    precision = str((record.get("config") or {}).get("precision") or "fp32")
    try:
        metric = build_metric(name, device, seed, precision)
    except BenchError as exc:
        raise Cannot(f"metric {name} cannot be built here ({exc})") from None
    return metric.eval()


def _origin(unit: Loaded, tid: str, units: list[Loaded], indexed: dict[str, pd.DataFrame]) -> Loaded | None:
    """The unit whose input decided a carried row: an attack unit of the same norm and seed at a radius no larger
    (a smaller radius's flip, or an attack this one runs after at its radius) that attacked and flipped the
    triplet and stored the very distances the carried row copied."""
    row, seed = indexed[unit.rel].loc[tid], unit.record["unit"]["settings"].get("seed")
    for u in units:
        if (
            u is unit
            or _norm(u) != _norm(unit)
            or _eps(u) > _eps(unit)
            or u.record["unit"]["settings"].get("seed") != seed
            or tid not in indexed[u.rel].index
        ):
            continue
        other = indexed[u.rel].loc[tid]
        if (
            _flag(other, "attacked")
            and _flag(other, "flipped")
            and math.isclose(float(other["d0"]), float(row["d0"]), rel_tol=1e-9, abs_tol=1e-12)
            and math.isclose(float(other["d1"]), float(row["d1"]), rel_tol=1e-9, abs_tol=1e-12)
        ):
            return u
    return None


def _tasks(
    units: list[Loaded], stored: dict[str, dict[int, Tensor]], position: dict[str, int], problems: list[str]
) -> tuple[list[Task], int]:
    """Every stored row with an input to re-score, and how many carried rows have none in the entry."""
    tasks, unchecked = [], 0
    indexed = {u.rel: _rows(u) for u in units}
    for unit in units:
        rows = indexed[unit.rel]
        attacked = set(rows.index[as_bool(rows["attacked"])]) if "attacked" in rows.columns else set()
        carried = set(rows.index[as_bool(rows["carried"])]) if "carried" in rows.columns else set()
        own = stored.get(unit.rel)
        if own is not None:
            wanted = {position[t] for t in attacked if t in position}
            for extra in sorted(set(own) - wanted)[:1]:
                problems.append(f"{unit.rel}: stores an input at position {extra}, a triplet its rows did not attack")
            for tid in sorted(attacked):
                if position.get(tid) not in own:
                    problems.append(f"{unit.rel}: triplet {tid} was attacked, but its input is not stored")
                else:
                    tasks.append(Task(unit, tid, position[tid], unit, own[position[tid]], rows.loc[tid]))
        for tid in sorted(carried):
            origin = _origin(unit, tid, units, indexed)
            inputs = stored.get(origin.rel) if origin is not None else None
            if origin is None or inputs is None or position.get(tid) not in inputs:
                unchecked += 1
            else:
                tasks.append(Task(unit, tid, position[tid], origin, inputs[position[tid]], rows.loc[tid]))
    return tasks, unchecked


def _clean_tasks(loaded: list[Loaded], stored: dict[str, dict[int, Tensor]], position: dict[str, int]) -> list[Task]:
    """The rows no attack perturbed (natural rows; an attack unit's rows neither attacked nor carried): their
    distances are the clean images', so the same metric must give them back too."""
    tasks = []
    for unit in loaded:
        kind = unit.record["evaluation"]["kind"]
        if not unit.record.get("applies") or not (kind == "clean" or unit.rel in stored) or "d0" not in unit.rows:
            continue
        rows = _rows(unit)
        moved = np.zeros(len(rows), dtype=bool)
        for column in ("attacked", "carried"):
            if column in rows.columns:
                moved |= as_bool(rows[column])
        tasks += [
            Task(unit, tid, position[tid], unit, None, rows.loc[tid]) for tid in rows.index[~moved] if tid in position
        ]
    return tasks


def _draw(tasks: list[Task], sample: int | None, seed: int) -> list[Task]:
    return tasks if sample is None or len(tasks) <= sample else random.Random(seed).sample(tasks, sample)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=DIST_RTOL, abs_tol=DIST_ATOL)


def _flag(row: pd.Series, column: str) -> bool:
    return bool(as_bool(pd.Series([row.get(column)]))[0])


def _task_problem(task: Task, d0: float, d1: float, target: Tensor, p: float) -> str | None:
    """Why a re-scored row is not what the unit stored (ball, range, norm, distances, outcome), or None."""
    where, row = f"{task.unit.rel}: triplet {task.tid}", task.row
    if task.x_adv is None:
        return _distance_problem(where, row, d0, d1, p)
    x_adv = task.x_adv.double()
    if tuple(x_adv.shape) != tuple(target.shape):
        return f"{where}: its input has shape {tuple(x_adv.shape)}, the attacked image {tuple(target.shape)}"
    if float(x_adv.min()) < -BALL_ATOL or float(x_adv.max()) > 1 + BALL_ATOL:
        return (
            f"{where}: its input leaves the image range [0, 1] ({float(x_adv.min()):.4g} to {float(x_adv.max()):.4g})"
        )
    norm, eps = _norm(task.unit), _eps(task.unit)
    delta = (x_adv - target.double()).flatten()
    size = float(delta.norm()) if norm == "l2" else float(delta.abs().max())
    if size > eps * (1 + BALL_RTOL) + BALL_ATOL:
        return f"{where}: its perturbation has {norm} norm {size:.6g}, outside eps {format_eps(eps)}"
    if "delta_norm" in row and not math.isclose(size, float(row["delta_norm"]), rel_tol=NORM_RTOL, abs_tol=NORM_ATOL):
        return f"{where}: its perturbation has {norm} norm {size:.6g}, its row says {float(row['delta_norm']):.6g}"
    return _distance_problem(where, row, d0, d1, p)


def _distance_problem(where: str, row: pd.Series, d0: float, d1: float, p: float) -> str | None:
    """Why the re-scored distances are not the row's (vote, distances, agreement, flip), or None."""
    if not math.isclose(p, float(row["p"]), abs_tol=1e-9):
        return f"{where}: its row's vote p {float(row['p']):g} is not the dataset's {p:g}"
    if not (_close(d0, float(row["d0"])) and _close(d1, float(row["d1"]))):
        return f"{where}: re-scored d0 {d0:.6g}, d1 {d1:.6g}; its row says d0 {float(row['d0']):.6g}, d1 {float(row['d1']):.6g}"
    if _close(d0, d1):
        return None  # too close to call: the outcome may differ by rounding alone
    agreement = float(twoafc_agreement(torch.tensor([d0]), torch.tensor([d1]), torch.tensor([p]))[0])
    flipped = _flag(row, "correct") and agreement <= 0.5
    if abs(agreement - float(row["agreement"])) > 1e-9 or ("flipped" in row and flipped != _flag(row, "flipped")):
        return f"{where}: re-scored agreement {agreement:g} (flipped {flipped}); its row says {float(row['agreement']):g} (flipped {_flag(row, 'flipped')})"
    return None


def _perturb(loaded: Loaded) -> str:
    return str(loaded.record["unit"]["settings"].get("perturb") or "ref")


def _score(
    metric: Any, data: TwoAFCDataset, tasks: list[Task], perturb: str
) -> list[tuple[float, float, Tensor, float]]:
    """(d0, d1, the clean attacked input, p) per task, embedded in small batches."""
    device = next((t.device for t in metric.parameters()), torch.device("cpu"))
    out = []
    for start in range(0, len(tasks), BATCH):
        part = tasks[start : start + BATCH]
        items = [data[t.position] for t in part]
        ref, x0, x1 = (torch.stack([i[k] for i in items]).to(device) for k in ("ref", "x0", "x1"))
        targets = [torch.cat([i["ref"], i["x0"], i["x1"]]) if perturb == "all" else i[perturb] for i in items]
        x_adv = torch.stack([t.x_adv if t.x_adv is not None else c for t, c in zip(part, targets)]).to(device)
        with torch.no_grad():
            clf = TwoAFCClassifier.from_images(metric, x0, x1, ref=None if perturb == "ref" else ref, perturb=perturb)
            d0, d1 = distances_from_logits(clf(x_adv).double().cpu())
        out += [(float(d0[k]), float(d1[k]), targets[k], float(item["p"])) for k, item in enumerate(items)]
    return out


def check_rescore(
    entry: dict[str, Any],
    loaded: dict[str, Loaded],
    artifacts: dict[str, Path],
    *,
    sample: int | None,
    seed: int,
    dataset: str | None = None,
    device: str = "cpu",
) -> Check:
    """Check 4: a seeded sample of the stored inputs (all when few) re-scored by the rebuilt metric."""
    check = Check("rescoring")
    other = sorted({_task_name(u.record) for u in loaded.values()} - {"2afc"})
    if other:  # the re-scoring below rebuilds 2AFC distances (d0, d1); another task's rows have none
        check.cannot = (
            f"re-scoring checks 2AFC entries only, and this entry's records score {', '.join(other)} items; "
            "skip it with --no-rescore (the files and cells checks still run)"
        )
        return check
    units = [u for u in loaded.values() if _attack(u)]
    natural = [u for u in loaded.values() if u.record["evaluation"]["kind"] == "clean" and u.record.get("applies")]
    if not entry.get("adversarial") and not natural:
        check.summary = "no adversarial inputs and no natural rows in the entry (nothing to re-score)"
        return check
    stored: dict[str, dict[int, Tensor]] = {}
    for rel, path in artifacts.items():
        if rel in loaded:
            tensors = _tensors(path, loaded[rel])
            if isinstance(tensors, str):
                check.problems.append(tensors)
            else:
                stored[rel] = tensors
    if entry.get("adversarial") and not stored:
        check.summary = "no readable adversarial inputs (see the files check)"
        return check
    # without adversarial inputs the natural rows are still re-scored on the clean images: resealed rows
    # (an edited distance with its record's checksums rewritten) pass every other check
    anchor = loaded[next(iter(stored))] if stored else natural[0]
    first = anchor.record
    try:
        data = dataset_of(first, dataset)
        metric = metric_of(entry, first, resolve_device(device))
    except Cannot as exc:
        check.cannot = str(exc)
        return check
    position = {str(r.id): i for i, r in enumerate(data.records)}
    tasks, unchecked = _tasks(units, stored, position, check.problems)
    clean = _clean_tasks(list(loaded.values()), stored, position)
    chosen, plain = _draw(tasks, sample, seed), _draw(clean, sample, seed)
    perturb = _perturb(anchor)
    for task, (d0, d1, target, p) in zip(chosen + plain, _score(metric, data, chosen + plain, perturb)):
        if problem := _task_problem(task, d0, d1, target, p):
            check.problems.append(problem)
    if not stored:
        check.summary = (
            f"no adversarial inputs in the entry; {len(plain)} of {len(clean)} natural row(s) re-scored by "
            f"{entry['metric']['registry']} on {device} (seed {seed}): distances and outcomes as their rows say"
        )
        return check
    left = f"; {unchecked} carried flip(s) from inputs the entry lacks not re-scored" if unchecked else ""
    check.summary = (
        f"{len(chosen)} of {len(tasks)} stored input(s) and {len(plain)} of {len(clean)} unperturbed row(s) "
        f"re-scored by {entry['metric']['registry']} on {device} (seed {seed}): inside their eps balls, distances "
        f"and outcomes as their rows say{left}"
    )
    return check
