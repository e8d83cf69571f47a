"""``run_bench.py ... --dry-run``: what a run would download and compute, and how long on one GPU.

Nothing is downloaded, built or computed: the data plan comes from the dataset family, weights from
the registry's availability probes, the units from the same planner the run uses (units already
stored in the run folder are marked and cost nothing), and the time from each evaluation's own
``flops`` over :mod:`lipsim_bench.protocol.cost`'s table, or from this machine's measured images/s
(:mod:`lipsim_bench.protocol.estimate`). It never imports the unit loop.
"""

from __future__ import annotations

from lipsim_bench.datasets import create_dataset, parse_dataset_arg
from lipsim_bench.errors import BenchError
from lipsim_bench.formatting import format_eps, ordinal
from lipsim_bench.locations import results_root
from lipsim_bench.metrics import get_metric_spec
from lipsim_bench.protocol.attack_work import LABEL as SCALED_LABEL
from lipsim_bench.protocol.attack_work import load_attack_work
from lipsim_bench.protocol.device_profile import load_device_profile
from lipsim_bench.protocol.estimate import Estimator
from lipsim_bench.run.plan import DataIdentity, metric_identity, plan_units
from lipsim_bench.run.records import RecordStore
from lipsim_bench.run.seeds import run_seeds
from lipsim_bench.run.spec import RunSpec, resolve
from lipsim_bench.tasks import get_task

#: Item count (triplets, queries, ...) used for estimates when the dataset's size is not known offline.
ESTIMATE_PER = 1000


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _dataset_lines(config: RunSpec, split: str) -> tuple[list[str], int | None, str | None]:
    """Lines on the data, the number of triplets (None when unknown) and the data's content id."""
    family, root = parse_dataset_arg(config.dataset)
    items = get_task(family.task).items  # triplets, queries, images
    lines = [
        f"data: {config.dataset} / {split} ({family.task})"
        + (f", first {config.n} {items}" if config.n else "")
        + (f", every {ordinal(config.every)} {get_task(family.task).item}" if config.every > 1 else "")
    ]
    try:
        dataset = create_dataset(config.dataset, config.split).head(config.n).every(config.every)
        dataset.check_files()
        lines.append(f"  here: {len(dataset)} {items}, all images present")
        return lines, len(dataset), dataset.fingerprint()
    except BenchError as exc:
        if family.fetch_plan is None:
            lines.append(f"  NOT usable here: {exc}")
            return lines, None, None
        plan_lines, n_triplets = family.fetch_plan(root, split, config.n)
        n_triplets = None if n_triplets is None else -(-n_triplets // config.every)
        lines += [f"  {line}" for line in plan_lines]
        if not config.download:
            lines.append("  (--no-download: the run would stop here; fetch with `python run_bench.py fetch night ...`)")
        return lines, n_triplets, None


def _weights_lines(config: RunSpec) -> list[str]:
    lines = ["weights:"]
    for name in config.metrics:
        spec = get_metric_spec(name)
        if spec.is_available():
            lines.append(f"  {name:<20} here ({spec.weights_id()})")
        elif config.download and spec.fetch is not None:
            lines.append(f"  {name:<20} MISSING, would download: {spec.weights}")
        else:
            lines.append(f"  {name:<20} MISSING: {spec.how_to_get}")
    return lines


def dry_run_report(config: RunSpec, preset: str | None = None) -> str:
    """The dry-run text (printed by the CLI; tests read it)."""
    from lipsim_bench.protocol.presets import get_preset

    lines = ["dry run: nothing is downloaded or computed"]
    if preset:
        lines.append(f"preset {preset}: {get_preset(preset).description}")
    family, _ = parse_dataset_arg(config.dataset)
    name, split = family.name, config.split or family.default_split
    task = get_task(family.task)  # its items (triplets, queries, images) are what the lines below count
    data_lines, n_triplets, content = _dataset_lines(config, split)
    lines += data_lines + _weights_lines(config)

    resolved = resolve(config, name)
    lines.append(
        "evaluations: "
        + ", ".join(f"{ev.column} ({ev.kind.value})" for ev in resolved.evaluations)
        + "; threat models: "
        + ", ".join(f"{t.norm} {format_eps(t.eps)}" for t in resolved.threats)
    )
    seeds = run_seeds(config)
    lines.append(
        f"seed {config.seed}, batch {config.batch_size}"
        if len(seeds) == 1
        else f"seeds {', '.join(map(str, seeds))}: the units whose numbers depend on the seed run once per seed, the "
        f"others once (at seed {seeds[0]}); batch {config.batch_size}"
    )

    counted = n_triplets if n_triplets is not None else ESTIMATE_PER
    per = (
        ""
        if n_triplets is not None
        else f" per {ESTIMATE_PER} {task.items} (the dataset's size is known once its files are here)"
    )
    out_dir = config.out or results_root() / f"{name}-{split}"
    store = RecordStore(out_dir)
    data = DataIdentity(name, split, config.n, content or "unknown")
    identities = {
        m: (
            metric_identity(m, config.seed, config.precision)
            if get_metric_spec(m).is_available()
            else {"weights": "missing"}
        )
        for m in config.metrics
    }
    lines.append(f"units (run folder {out_dir}; stored units are skipped):")
    total, unknown = 0.0, []
    estimator = Estimator(tuple(resolved.threats), load_device_profile(), load_attack_work())
    for planned in plan_units(config, resolved, data, identities):
        if planned.applies is False:
            continue  # e.g. no Lipschitz bound: the run records "does not apply" at no cost
        stored = (
            content is not None
            and identities[planned.metric]["weights"] != "missing"
            and store.load(planned.unit) is not None
        )
        unit = None if stored else estimator.estimate(planned.metric, planned.evaluation, planned.threat, counted)
        estimate = None if unit is None else unit.seconds
        what = f"{planned.evaluation.label(planned.threat)} [{planned.evaluation.kind.value}]"
        if planned.per_seed:
            what += f" seed {planned.seed}"
        if planned.applies is None:
            what += " (if the metric allows it)"
        if stored:
            cost = "stored, skipped"
        elif estimate is None:
            cost = "time unknown (metric not in bench/protocol/cost_table.json)"
            unknown.append(planned.metric)
        else:
            scaled = "; ".join(
                part
                for part in (
                    None
                    if unit is None or unit.attacked is None
                    else f"{unit.attacked:.0%} of correct {task.items} attacked",
                    None
                    if unit is None or unit.steps is None or unit.steps >= 0.995  # every step: nothing to say
                    else f"{unit.steps:.0%} of their steps",
                )
                if part
            )
            scaled = f" ({scaled})" if scaled else ""
            cost = format_seconds(estimate) + scaled
            total += estimate
        lines.append(f"  {planned.metric:<20} {what:<48} {cost}")
    lines += _total_lines(estimator, format_seconds(total) + per, task.item)
    if unknown:
        lines.append(
            f"  not counted: {', '.join(sorted(set(unknown)))} (no FLOPs in the cost table; add them with benchmarks/flops.py)"
        )
    return "\n".join(lines)


def _total_lines(estimator: Estimator, total: str, item: str = "triplet") -> list[str]:
    """The total, which metrics were measured on a device and which assumed, and how attacks were counted (per
    ``item``: the task's, e.g. triplet or query)."""
    gpu, profile, torchrun = estimator.gpu, estimator.profile, "with torchrun on K GPUs, about 1/K of it"
    assumed = f"one {gpu.name} ({gpu.sustained_tflops:.1f} TFLOPS sustained, assumed)"
    if not estimator.measured or profile is None:
        lines = [f"estimated time on {assumed}: {total}; {torchrun}"]
    else:
        lines = [
            f"estimated time: {total}; {torchrun}",
            f"  measured on {profile.describe()}: {', '.join(sorted(estimator.measured))}",
        ]
        if estimator.assumed:
            lines.append(f"  assumed (FLOPs over {assumed}): {', '.join(sorted(estimator.assumed))}")
    sources = (["measured images/s of each pass"] if estimator.measured else []) + (
        ["matmul/conv FLOPs of each pass (bench/protocol/cost_table.json) / assumed throughput"]
        if estimator.assumed
        else []
    )
    stopping = (
        [
            f"early stopping counted for {', '.join(sorted(estimator.early_stopped))} (the share of the budget the bundled run used)"
        ]
        if estimator.early_stopped
        else []
    ) + (
        [f"whole budget (early stopping not measured) for {', '.join(sorted(estimator.full_budget))}"]
        if estimator.full_budget
        else []
    )
    lines.append(f"  estimate = {' or '.join(sources) or 'nothing to compute'}" + "".join(f"; {s}" for s in stopping))
    if estimator.scaled:
        lines.append(f"  {SCALED_LABEL}; every {item} counted as initially correct")
    if estimator.unscaled:
        lines.append(f"  attacks counted on every {item} (an upper bound): {'; '.join(sorted(estimator.unscaled))}")
    return lines


def print_dry_run(config: RunSpec, preset: str | None = None) -> None:
    print(dry_run_report(config, preset))
