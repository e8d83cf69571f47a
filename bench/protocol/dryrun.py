"""``run_bench.py ... --dry-run``: what a run would download and compute, and how long on one GPU.

Nothing is downloaded, built or computed: the data plan comes from the dataset family, weights from
the registry's availability probes, the units from the same planner the runner uses (units already
stored in the run folder are marked and cost nothing), and the time from :mod:`bench.cost`.
"""

from __future__ import annotations

from bench.cost import DEFAULT_GPU, estimate_seconds
from bench.datasets import create_dataset, parse_dataset_arg
from bench.errors import BenchError
from bench.records import RecordStore
from bench.report import format_eps
from bench.runner import RunConfig, attack_threats, default_out_dir, make_unit, metric_weights_id, planned_units
from metrics import get_metric_spec

#: Triplet count used for estimates when the dataset's size is not known offline.
ESTIMATE_PER = 1000


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _dataset_lines(config: RunConfig, split: str) -> tuple[list[str], int | None]:
    """Lines on the data, and the number of triplets (None when unknown)."""
    family, root = parse_dataset_arg(config.dataset)
    lines = [f"data: {config.dataset} / {split}" + (f", first {config.n} triplets" if config.n else "")]
    try:
        dataset = create_dataset(config.dataset, config.split).head(config.n)
        dataset.check_files()
        lines.append(f"  here: {len(dataset)} triplets, all images present")
        return lines, len(dataset)
    except BenchError as exc:
        if family.fetch_plan is None:
            lines.append(f"  NOT usable here: {exc}")
            return lines, None
        plan_lines, n_triplets = family.fetch_plan(root, split, config.n)
        lines += [f"  {line}" for line in plan_lines]
        if not config.download:
            lines.append("  (--no-download: the run would stop here; fetch with `python run_bench.py fetch night ...`)")
        return lines, n_triplets


def _weights_lines(config: RunConfig) -> list[str]:
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


def dry_run_report(config: RunConfig, preset: str | None = None) -> str:
    """The dry-run text (printed by the CLI; tests read it)."""
    from bench.presets import get_preset

    lines = ["dry run: nothing is downloaded or computed"]
    if preset:
        lines.append(f"preset {preset}: {get_preset(preset).description}")
    family, _ = parse_dataset_arg(config.dataset)
    name, split = family.name, config.split or family.default_split
    data_lines, n_triplets = _dataset_lines(config, split)
    lines += data_lines + _weights_lines(config)

    threats = attack_threats(config, name)
    lines.append("attacks: " + (", ".join(config.attacks) or "none") + "; threat models: " + ", ".join(f"{t.norm} {format_eps(t.eps)}" for t in threats))
    lines.append(f"steps {config.steps}, restarts {config.restarts}, seed {config.seed}, batch {config.batch_size}")

    counted = n_triplets if n_triplets is not None else ESTIMATE_PER
    per = "" if n_triplets is not None else f" per {ESTIMATE_PER} triplets (the dataset's size is known once data.csv is here)"
    out_dir = config.out or default_out_dir(name, split)
    store = RecordStore(out_dir)
    units = planned_units(config, name)
    lines.append(f"units (run folder {out_dir}; stored units are skipped):")
    total, unknown = 0.0, []
    for metric in config.metrics:
        spec = get_metric_spec(metric)
        weights = metric_weights_id(metric, config.seed) if spec.is_available() else None
        certifiable = spec.certifiable()
        for evaluation, threat in units:
            if evaluation == "certified" and certifiable is False:
                continue  # no Lipschitz bound: the runner records "does not apply" at no cost
            unit = make_unit(config, split, metric, weights or "", evaluation, threat) if weights else None
            stored = unit is not None and store.load(unit) is not None
            seconds = estimate_seconds(metric, evaluation, counted, steps=config.steps, restarts=config.restarts)
            what = f"{evaluation}" + (f" {threat.norm} {format_eps(threat.eps)}" if threat else "")
            if evaluation == "certified" and certifiable is None:
                what += " (if the metric has a Lipschitz bound)"
            if stored:
                cost = "stored, skipped"
            elif seconds is None:
                cost = "time unknown (metric not in bench/cost_table.json)"
                unknown.append(metric)
            else:
                cost = format_seconds(seconds)
                total += seconds
            lines.append(f"  {metric:<20} {what:<48} {cost}")
    gpu = DEFAULT_GPU
    lines.append(
        f"estimated time on one {gpu.name} ({gpu.sustained_tflops:.1f} TFLOPS sustained, assumed): {format_seconds(total)}{per}; "
        "with torchrun on K GPUs, about 1/K of it"
    )
    if unknown:
        lines.append(f"  not counted: {', '.join(sorted(set(unknown)))} (no FLOPs in the cost table; add them with benchmarks/flops.py)")
    lines.append("  estimate = matmul/conv FLOPs of each pass (bench/cost.py) / assumed throughput; attacks counted as if no triplet stopped early")
    return "\n".join(lines)


def print_dry_run(config: RunConfig, preset: str | None = None) -> None:
    print(dry_run_report(config, preset))
