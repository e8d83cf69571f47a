"""Write bench/protocol/attack_work.json: how much of each attack unit a run actually attacked.

Usage: python benchmarks/attack_work.py RUN_FOLDER [--out FILE] [--metrics a,b] [--passes FILE ...]
       (the committed file: python benchmarks/attack_floor.py --out RUN_FOLDER, the bundled run counted,
        then python benchmarks/attack_work.py RUN_FOLDER --metrics ...; its source field has the commands)

Reads RUN_FOLDER/triplets.csv (attack rows need the columns correct, attacked, carried, proven) and,
per metric, norm and eps (all attack evaluations pooled), counts the initially correct triplets and
how many were attacked, carried from the smaller radius, or proven robust. The fractions of the
correct ones (see bench/protocol/attack_work.py for the three) are averaged over the metrics of each
class (certifiable: the metric declares a Lipschitz bound; uncertifiable: the rest), each metric
weighing the same. The file records the command, the commits, and the metrics behind each class.

Early stopping: when RUN_FOLDER/attack_passes.json is there (``python benchmarks/attack_floor.py --out
RUN_FOLDER`` writes it while running the benchmark; ``--passes FILE`` adds other runs' files), the file also gets ``steps``: per attack evaluation, class,
norm and eps, the share of its budget an attacked triplet took (passes / (attacked x budget); queries for an
attack without gradients) and the share of attacked triplets left robust, averaged over the class's metrics.
Prints the table it writes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd  # noqa: E402

NEEDED = ("metric", "kind", "norm", "eps", "correct", "attacked", "carried", "proven")
RANDOM_SUFFIX = " (random weights)"


class InputError(Exception):
    """Bad run folder or triplets.csv: printed as one line."""


def _as_bool(column: pd.Series) -> pd.Series:
    if column.dtype == bool:
        return column
    return column.map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))


def read_attack_rows(folder: Path) -> pd.DataFrame:
    """The attack rows of the run's triplets.csv, their flags as booleans."""
    path = folder / "triplets.csv"
    if not path.is_file():
        raise InputError(f"{path} does not exist; give a run folder (python run_bench.py writes triplets.csv there)")
    rows = pd.read_csv(path, low_memory=False)
    missing = [c for c in NEEDED if c not in rows.columns]
    if missing:
        raise InputError(
            f"{path} lacks the columns {', '.join(missing)}; rerun the benchmark with this version "
            "(attack rows record attacked / carried / proven)"
        )
    rows = rows[rows["kind"] == "attack"].copy()
    if rows.empty:
        raise InputError(f"{path} has no attack rows; run the benchmark with an attack (the default does)")
    for column in ("correct", "attacked", "carried", "proven"):
        rows[column] = _as_bool(rows[column])
    rows["metric"] = rows["metric"].astype(str).str.removesuffix(RANDOM_SUFFIX)
    return rows


def fractions(correct: int, attacked: int, carried: int, proven: int) -> dict[str, float]:
    """The three fractions of bench/protocol/attack_work.py, of the initially correct triplets."""
    return {
        "carry_and_skip": round(attacked / correct, 4),
        "carry": round((attacked + proven) / correct, 4),
        "skip_proven": round((attacked + carried) / correct, 4),
    }


def per_metric(rows: pd.DataFrame) -> dict[str, dict[str, list[dict[str, float]]]]:
    """``{metric: {norm: [point, ...]}}``, a point = eps, counts and fractions."""
    result: dict[str, dict[str, list[dict[str, float]]]] = {}
    for (metric, norm, eps), part in rows.groupby(["metric", "norm", "eps"], sort=True):
        correct = part[part["correct"]]
        if correct.empty:
            continue  # nothing to attack at all: no fraction to learn from
        counts = {k: int(correct[k].sum()) for k in ("attacked", "carried", "proven")}
        point = {"eps": float(eps), "correct": len(correct), **counts, **fractions(len(correct), **counts)}
        result.setdefault(str(metric), {}).setdefault(str(norm), []).append(point)
    return result


def per_class(metrics: dict[str, dict[str, list[dict[str, float]]]], classes: dict[str, str]) -> dict[str, dict]:
    """Per class and norm: each eps's fractions averaged over the class's metrics that have it."""
    from lipsim_bench.protocol.attack_work import MODES

    result: dict[str, dict] = {}
    for cls in sorted(set(classes.values())):
        names = sorted(m for m, c in classes.items() if c == cls)
        norms: dict[str, list[dict[str, float]]] = {}
        for norm in sorted({n for m in names for n in metrics[m]}):
            points = [p for m in names for p in metrics[m].get(norm, [])]
            for eps in sorted({p["eps"] for p in points}):
                at = [p for p in points if p["eps"] == eps]
                norms.setdefault(norm, []).append(
                    {
                        "eps": eps,
                        **{mode: round(sum(p[mode] for p in at) / len(at), 4) for mode in MODES},
                        "metrics": len(at),
                    }
                )
        result[cls] = {"metrics": names, "norms": norms}
    return result


def _counted(unit: dict, units: dict[tuple[str, str, str, float], dict]) -> int:
    """The triplets the dry run counts as attacked in this unit: its own, or for an attack cascaded after others
    (option ``after``) those the cascade's first attack attacked (the fractions are that attack's)."""
    seen = {unit["evaluation"]}
    while True:
        after = [name for name in str(unit.get("options", {}).get("after", "")).split(",") if name.strip()]
        head = units.get((unit["metric"], after[0].strip(), unit["norm"], float(unit["eps"]))) if after else None
        if head is None or head["evaluation"] in seen:
            return int(unit["attacked"])
        seen.add(head["evaluation"])
        unit = head


def step_shares(paths: list[Path], only: list[str] | None) -> dict | None:
    """The ``steps`` object from attack_passes.json files (None when there are none): per attack, class and norm.

    A unit (metric, attack, norm, eps) found in several files counts once, from the first."""
    from lipsim_bench.protocol.attack_work import metric_class

    paths = [path for path in paths if path.is_file()]
    if not paths:
        return None
    seen: set[tuple[str, str, str, float]] = set()
    pooled: dict[tuple[str, str, str, float], list[dict]] = {}
    for path in paths:
        try:
            units = json.loads(path.read_text())["units"]
            by_key = {(u["metric"], u["evaluation"], u["norm"], float(u["eps"])): u for u in units}
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path} is not an attack_passes.json ({exc}); rerun benchmarks/attack_floor.py") from None
        for u in units:
            metric = str(u["metric"]).removesuffix(RANDOM_SUFFIX)
            key = (metric, u["evaluation"], u["norm"], float(u["eps"]))
            counted = _counted(u, by_key)
            if (only and metric not in only) or not counted or key in seen:
                continue
            seen.add(key)
            pooled.setdefault((u["evaluation"], metric_class(metric), u["norm"], float(u["eps"])), []).append(
                {**u, "counted": counted}
            )
    steps: dict = {
        "what": "per attack evaluation, class, norm and eps: share = passes / (counted x budget) under early stopping "
        "(queries for an attack without gradients), robust = attacked triplets left unflipped / counted, budget = "
        "(steps or queries + 1) x restarts; counted = the triplets attacked, or for an attack cascaded after others "
        "(option after) those the cascade's first attack attacked",
    }
    for (attack, cls, norm, eps), at in sorted(pooled.items()):
        budgets = {u["budget"] for u in at}
        if len(budgets) != 1:
            raise InputError(f"{path}: {attack} ran with budgets {sorted(budgets)}; measure one budget per run")
        # passes, or queries less the run's final forward of each attacked triplet (the cost model's own + F)
        made = [u["passes"] if u["gradients"] else u["forwards"] - u["attacked"] for u in at]
        work = [m / (u["counted"] * u["budget"]) for m, u in zip(made, at)]
        robust = [(u["attacked"] - u["fooled"]) / u["counted"] for u in at]
        steps.setdefault(attack, {}).setdefault(cls, {}).setdefault(norm, []).append(
            {
                "eps": eps,
                "share": round(min(sum(work) / len(at), 1.0), 4),
                "robust": round(sum(robust) / len(at), 4),
                "budget": budgets.pop(),
                "metrics": len(at),
            }
        )
    return steps


def _run_commits(folder: Path) -> list[str]:
    """The commits the run's attack records were computed at (from their provenance)."""
    commits = set()
    for record in (folder / "records").glob("*.json"):
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if data.get("evaluation", {}).get("kind") == "attack":
            git = data.get("provenance", {}).get("git", {})
            commits.add(f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}")
    return sorted(commits)


def build(folder: Path, only: list[str] | None, argv: list[str], passes: list[Path] | None = None) -> dict:
    from lipsim_bench.metrics import MetricError
    from lipsim_bench.protocol.attack_work import FORMAT, metric_class
    from lipsim_bench.run.records import git_commit

    rows = read_attack_rows(folder)
    if only:
        rows = rows[rows["metric"].isin(only)]
        if rows.empty:
            raise InputError(f"none of {', '.join(only)} has attack rows in {folder / 'triplets.csv'}")
    metrics = per_metric(rows)
    classes = {}
    for name in metrics:
        try:
            classes[name] = metric_class(name)
        except MetricError as exc:
            raise InputError(
                f"{exc} (load its plugin with LIPSIM_BENCH_PLUGINS, or leave it out with --metrics)"
            ) from None
    git = git_commit()
    steps = step_shares([folder / "attack_passes.json", *(passes or [])], only)
    return {
        "format": FORMAT,
        "what": "fraction of the initially correct triplets an attack unit attacks, per class of metric, norm and eps; "
        "carry_and_skip = attacked / correct, carry = (attacked + proven) / correct, skip_proven = (attacked + carried) / correct",
        "source": {
            "command": "python benchmarks/attack_work.py " + " ".join(argv),
            "commit": f"{git['commit']}{' (dirty)' if git['dirty'] else ''}",
            "run_folder": str(folder),
            "run_commits": _run_commits(folder),
            "passes": [str(f) for f in [folder / "attack_passes.json", *(passes or [])] if f.is_file()],
            "dataset": sorted(map(str, rows["dataset"].unique())) if "dataset" in rows else None,
            "evaluations": sorted(map(str, rows["evaluation"].unique())) if "evaluation" in rows else None,
            "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        "classes": per_class(metrics, classes),
        "per_metric": {name: {"class": classes[name], "norms": norms} for name, norms in metrics.items()},
    } | ({"steps": steps} if steps is not None else {})


def _print(work: dict) -> None:
    print(f"{'class / metric':<28} {'norm':<5} {'eps':>7} {'correct':>7} {'carry+skip':>10} {'carry':>7} {'skip':>7}")
    for cls, entry in work["classes"].items():
        for norm, points in entry["norms"].items():
            for p in points:
                print(
                    f"{cls:<28} {norm:<5} {p['eps']:>7.4g} {'':>7} {p['carry_and_skip']:>10.3f} {p['carry']:>7.3f} {p['skip_proven']:>7.3f}"
                )
        for name in entry["metrics"]:
            for norm, points in work["per_metric"][name]["norms"].items():
                for p in points:
                    print(
                        f"  {name:<26} {norm:<5} {p['eps']:>7.4g} {p['correct']:>7d} {p['carry_and_skip']:>10.3f} "
                        f"{p['carry']:>7.3f} {p['skip_proven']:>7.3f}"
                    )


def _print_steps(steps: dict) -> None:
    print(f"\n{'attack / class':<28} {'norm':<5} {'eps':>7} {'budget':>6} {'share':>7} {'robust':>7}")
    for attack, classes in steps.items():
        if attack == "what":
            continue
        for cls, norms in classes.items():
            for norm, points in norms.items():
                for p in points:
                    print(
                        f"{attack + ' / ' + cls:<28} {norm:<5} {p['eps']:>7.4g} {p['budget']:>6d} {p['share']:>7.3f} {p['robust']:>7.3f}"
                    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_folder", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="default: bench/protocol/attack_work.json")
    parser.add_argument(
        "--passes",
        type=Path,
        action="append",
        help="repeatable: another run's attack_passes.json for the steps of attacks RUN_FOLDER lacks (e.g. --preset ensemble)",
    )
    parser.add_argument(
        "--metrics", default=None, help="comma-separated metrics to use (default: every metric of the run)"
    )
    args = parser.parse_args(argv)
    from lipsim_bench.protocol.attack_work import ATTACK_WORK

    only = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    try:
        work = build(args.run_folder, only, argv, args.passes)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or ATTACK_WORK
    out.write_text(json.dumps(work, indent=1) + "\n")
    _print(work)
    if "steps" in work:
        _print_steps(work["steps"])
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
