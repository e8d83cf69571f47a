"""``run_bench.py list``: every registered metric, dataset, evaluation (with its kind and options) and preset."""

from __future__ import annotations

import textwrap

from lipsim_bench.datasets import list_datasets
from lipsim_bench.evaluations import EVALUATIONS
from lipsim_bench.evaluations.options import option_fields
from lipsim_bench.extras import missing_extras
from lipsim_bench.metrics import MetricSpec, default_metrics, get_metric_spec, list_metrics
from lipsim_bench.metrics.conventions import NOT_STATED
from lipsim_bench.protocol.presets import list_presets
from lipsim_bench.tasks import TASKS

#: Metric names are padded to the longest built-in one (lipsim-tiny-stlpips); a metric's later lines start after
#: the name column, and ``list`` is at most _WIDTH wide.
_NAME = 19
_INDENT, _WIDTH = " " * (_NAME + 3), 120


def _conventions_lines(spec: MetricSpec) -> list[str]:
    """The metric's stated conventions, one field a line under its name ("conventions: not stated" for a plugin
    without), long ones wrapped; then what identifies its weights."""
    c = spec.conventions
    fields = (
        [("conventions", NOT_STATED)]
        if c is None
        else [
            ("input", c.input if c.input_range == "[0, 1]" else f"{c.input_range} -> {c.input}"),
            ("resize", c.resize),
            ("distance", c.distance + ("" if c.symmetric else " (asymmetric)")),
            ("mirrors", c.mirrors),
        ]
    )
    lines = []
    for label, text in [*fields, ("weights are", spec.weights)]:
        lines += textwrap.wrap(
            f"{label}: {text}", _WIDTH, initial_indent=_INDENT, subsequent_indent=_INDENT + "  ", break_on_hyphens=False
        )
    return lines


def _metric_lines() -> list[str]:
    lines = ["metrics (name, bundled, weights here, description; then its conventions and weights):"]
    for name in list_metrics():
        spec = get_metric_spec(name)
        available = "yes" if spec.is_available() else "no"
        bundled = "bundled" if spec.bundled else "-"
        line = "\n".join(
            [f"  {name:<{_NAME}} {bundled:<8} weights: {available:<4} {spec.description}", *_conventions_lines(spec)]
        )
        extras = missing_extras(spec.requires)
        if extras:
            line += f"\n{_INDENT}needs: pip install 'lipsim-bench[{','.join(extras)}]'"
        elif not spec.is_available() and spec.how_to_get:
            line += f"\n{_INDENT}get them: {spec.how_to_get}"
        lines.append(line)
    return lines


def _sweep_example(default: object) -> str:
    """Values of the option's own type: sigmas for a float, counts for an integer."""
    return "1,5,10" if isinstance(default, int) and not isinstance(default, bool) else "0.12,0.25,0.5"


def _evaluation_lines() -> list[str]:
    lines = ["evaluations (--evaluations NAME,...; options: --set NAME.OPTION=VALUE):"]
    for name, cls in EVALUATIONS.items():
        per = ", per threat model" if cls.per_threat else ""
        tasks = ", ".join(cls.tasks)
        lines.append(f"  {name:<18} {cls.kind.value}{per}, task {tasks}: {cls.description}")
        defaults = cls.Options()
        options = ", ".join(f"{field}={getattr(defaults, field)!r}" for field in option_fields(cls.Options))
        if options:
            lines.append(f"  {'':<18} options: {options}")
        if cls.sweeps:
            lines.append(
                f"  {'':<18} several values run one unit each: {', '.join(cls.sweeps)} "
                f"(e.g. --set {name}.{cls.sweeps[0]}={_sweep_example(getattr(defaults, cls.sweeps[0]))})"
            )
    return lines


def listing() -> str:
    lines = _metric_lines() + ["", "datasets:"]
    for ds in list_datasets():
        splits = ", ".join(ds.splits) if ds.splits else "subsets under ROOT, or all"
        usage = f"{ds.name}:ROOT" if ds.needs_root else ds.name
        lines.append(f"  {usage:<18} task {ds.task}, splits: {splits}\n  {'':<18} {ds.description}")
    lines += ["", "tasks (a dataset's task decides its evaluations and its table):"]
    for name, task in TASKS.items():
        defaults = ", ".join(task.default_evaluations)
        lines.append(f"  {name:<18} {task.score_name} per {task.item}; default evaluations: {defaults}")
    lines += ["", *_evaluation_lines(), "", "attacks (each is an evaluation of kind attack):"]
    lines.append("  " + (", ".join(n for n, c in EVALUATIONS.items() if c.kind.value == "attack") or "(none)"))
    lines += ["", "presets (--preset NAME; add --dry-run to see what it needs):"]
    for preset in list_presets():
        names = preset.options.get("metrics") or [f"the default run's: {', '.join(default_metrics())}"]
        lines.append(f"  {preset.name:<18} {preset.description}\n  {'':<18} metrics: {', '.join(names)}")
    return "\n".join(lines)
