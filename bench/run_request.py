"""Parsed command-line options -> a :class:`~lipsim_bench.run.spec.RunSpec`, checked whole before any work.

The shorthand flags (``--attacks``, ``--certify``, ``--steps``, ...) become evaluations and options here, a
shorthand that disagrees with a ``--set`` of the same option is refused, and the spec is checked by the same
:func:`~lipsim_bench.run.spec.check_spec` as the Python API's. The parser itself is :mod:`lipsim_bench.run_args`.
"""

from __future__ import annotations

import argparse
from typing import Any

from lipsim_bench.datasets import dataset_task, parse_dataset_arg
from lipsim_bench.devices import resolve_device
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations import get_evaluation
from lipsim_bench.evaluations.options import coerce, option_fields, parse_set
from lipsim_bench.locations import set_user_weights_dir
from lipsim_bench.metrics import default_metrics, get_metric_spec, list_metrics
from lipsim_bench.run.seeds import parse_seeds
from lipsim_bench.run.spec import RunSpec, check_spec, parse_eps
from lipsim_bench.run_args import _given, parse_threat
from lipsim_bench.tasks import get_task
from lipsim_bench.tasks.base import DEFAULT_TASK


def _evaluation_names(args: argparse.Namespace) -> list[str]:
    """``--evaluations``, or the shorthand: natural, certified (``--certify``), the attacks, direct (``--histogram``)."""
    argv = getattr(args, "_argv", [])
    if args.evaluations is not None:
        if _given(argv, "--attacks", "--certify", "--no-certify", "--histogram"):
            if not _given(argv, "--evaluations"):
                raise BenchError(
                    f"--preset {args.preset} sets --evaluations {','.join(args.evaluations)}; change them with --evaluations, "
                    "not --attacks/--certify/--histogram"
                )
            raise BenchError("give either --evaluations or --attacks/--certify/--histogram, not both")
        return list(args.evaluations)
    task = dataset_task(str(args.dataset))
    if task != DEFAULT_TASK:  # the shorthand flags name 2AFC's evaluations; another task has its own defaults
        if _given(argv, "--attacks", "--certify", "--no-certify", "--histogram"):
            raise BenchError(
                f"--attacks/--certify/--histogram name 2AFC evaluations, and {args.dataset} is a {task} dataset; "
                f"name its evaluations with --evaluations (see `python run_bench.py list`)"
            )
        return list(get_task(task).default_evaluations)
    attacks = [] if args.attacks == ["none"] else list(args.attacks)
    from lipsim_bench.attacks import ATTACKS

    for name in attacks:
        ATTACKS.get(name)  # an unknown attack fails here, with the closest names
    return ["natural"] + (["certified"] if args.certify else []) + attacks + (["direct"] if args.histogram else [])


def _shorthands(args: argparse.Namespace, evaluations: list[str]) -> dict[tuple[str, str], tuple[str, Any]]:
    """(evaluation, option) -> (the flag the user wrote, its value): what a ``--set`` must agree with.

    A preset's values are not here: ``--set`` overrides a preset by design.
    """
    argv = getattr(args, "_argv", [])
    given: dict[tuple[str, str], tuple[str, Any]] = {}
    for flag, option, value in (("--steps", "steps", args.steps), ("--restarts", "restarts", args.restarts)):
        if value is not None and _given(argv, flag):
            for name in evaluations:
                if option in option_fields(get_evaluation(name).Options):
                    given[name, option] = (f"{flag} {value}", value)
    if args.certify_eps is not None and _given(argv, "--certify-eps") and "certified" in evaluations:
        given["certified", "eps"] = (
            f"--certify-eps {args.certify_eps}",
            tuple(parse_eps(args.certify_eps, "--certify-eps")),
        )
    if args.histogram_eps is not None and _given(argv, "--histogram-eps") and "direct" in evaluations:
        given["direct", "eps"] = (
            f"--histogram-eps {args.histogram_eps}",
            parse_eps(args.histogram_eps, "--histogram-eps")[0],
        )
    return given


def _check_agrees(shorthand: tuple[str, Any], name: str, option: str, text: str) -> None:
    """``--steps 20`` with ``--set apgd.steps=100``: two values for one option is a contradiction, refused."""
    flag, value = shorthand
    kind = option_fields(get_evaluation(name).Options)[option]
    try:
        same = coerce(kind, text, f"{name}.{option}") == coerce(kind, value, f"{name}.{option}")
    except BenchError:
        return  # a bad --set value: its own error follows when the options are built
    if not same:
        raise BenchError(
            f"{flag} and --set {name}.{option}={text} disagree; give {name}.{option} once (drop one of the two)"
        )


def _preset_values(values: dict[str, Any], evaluations: list[str]) -> dict[str, Any]:
    """A preset's options of one evaluation, its cascade (``after``) cut to the attacks this run keeps: a narrower
    ``--evaluations`` than the preset's leaves the others out of the cascade instead of failing on them."""
    if "after" not in values:
        return dict(values)
    kept = ",".join(n for n in (t.strip() for t in str(values["after"]).split(",")) if n in evaluations)
    return {k: v for k, v in values.items() if k != "after"} | ({"after": kept} if kept else {})


def _certificates(args: argparse.Namespace, evaluations: list[str]) -> list[str]:
    """The evaluations whose radii ``--certify-eps`` (and an l2 ``--eps``) set: 2AFC's ``certified``; on another
    task's data, every certificate of the run with radii (recall-certified, knn-certified, recall-smoothing, ...)."""
    if dataset_task(str(args.dataset)) == DEFAULT_TASK:
        return [name for name in evaluations if name == "certified"]
    return [
        name
        for name in evaluations
        if get_evaluation(name).kind.value == "certificate" and "eps" in option_fields(get_evaluation(name).Options)
    ]


def _options(args: argparse.Namespace, evaluations: list[str]) -> dict[str, dict[str, Any]]:
    """Per-evaluation option values: the shorthand flags first, then ``--set`` (which must agree with them)."""
    argv = getattr(args, "_argv", [])
    if _given(argv, "--histogram-eps") and "direct" not in evaluations:
        raise BenchError(
            "--histogram-eps is given but the direct attack does not run; add --histogram (or --evaluations ...,direct)"
        )
    certificates = _certificates(args, evaluations)
    if _given(argv, "--certify-eps") and not certificates:
        raise BenchError(
            "--certify-eps is given but certificates do not run; drop --no-certify (or add certified to --evaluations)"
            if dataset_task(str(args.dataset)) == DEFAULT_TASK
            else f"--certify-eps is given but no certificate with radii runs on {args.dataset}; add one to --evaluations"
        )
    options: dict[str, dict[str, Any]] = {}
    shorthand = {"steps": args.steps, "restarts": args.restarts}
    preset = getattr(args, "evaluation_options", None) or {}  # a preset's; the run's own flags and --set win
    for name in evaluations:
        fields = option_fields(get_evaluation(name).Options)
        options[name] = {
            **_preset_values(preset.get(name, {}), evaluations),
            **{k: v for k, v in shorthand.items() if v is not None and k in fields},
        }
    for name in certificates:
        if args.certify_eps is not None:
            options[name]["eps"] = parse_eps(args.certify_eps, "--certify-eps")
        elif args.eps is not None and (args.norm or "l2") == "l2":
            options[name]["eps"] = parse_eps(args.eps)  # --eps sets both, --certify-eps only the certificates
    if args.histogram_eps is not None and "direct" in options:
        options["direct"]["eps"] = parse_eps(args.histogram_eps, "--histogram-eps")[0]
    given: dict[tuple[str, str], str] = {}
    shorthands = _shorthands(args, evaluations)
    for text in args.set_options:
        name, option, value = parse_set(text)
        if name not in options:
            raise BenchError(f"--set {text}: {name!r} is not among this run's evaluations ({', '.join(evaluations)})")
        if (name, option) in shorthands:
            _check_agrees(shorthands[name, option], name, option, value)
        if (name, option) in given and given[name, option] != value:
            raise BenchError(
                f"--set {name}.{option} is given twice with different values ({given[name, option]} and {value}); give it once"
            )
        given[name, option] = value
        options[name][option] = value
    return {name: values for name, values in options.items() if values}


def _threats(args: argparse.Namespace) -> list[tuple[str, list[float]]] | None:
    if args.threat and (args.eps is not None or args.norm is not None) and getattr(args, "_threat_given", False):
        raise BenchError("give either --threat or --norm/--eps, not both")
    if args.threat and args.eps is None and args.norm is None:  # explicit --norm/--eps replace a preset's threats
        return [parse_threat(t) for t in args.threat]
    if args.eps is not None or args.norm is not None:
        norm = args.norm or "l2"
        from lipsim_bench.run.spec import default_attack_eps

        family, _ = parse_dataset_arg(args.dataset)
        return [(norm, parse_eps(args.eps) if args.eps is not None else list(default_attack_eps(family.name, norm)))]
    return None


def _warn_unused(args: argparse.Namespace, evaluations: list[str]) -> None:
    """A flag the user wrote that no evaluation of the run reads: one warning line, not silence."""
    import sys

    argv = getattr(args, "_argv", [])
    used = {option for name in evaluations for option in option_fields(get_evaluation(name).Options)}
    radii = any(get_evaluation(name).per_threat for name in evaluations) or "certified" in evaluations
    for flag, needs in (
        ("--steps", "steps" in used),
        ("--restarts", "restarts" in used),
        ("--eps", radii),
        ("--norm", radii),
        ("--threat", radii),
    ):
        if _given(argv, flag) and not needs:
            print(
                f"warning: {flag} is given but no evaluation of this run ({', '.join(evaluations)}) uses it; it changes nothing",
                file=sys.stderr,
            )


def _warn_missing_default_metrics(metrics: list[str]) -> None:
    """A default-run metric whose weights are not here is left out of the run: one line says which and how to get it."""
    import sys

    for name in list_metrics(bundled_only=True):
        spec = get_metric_spec(name)
        if spec.default_run and name not in metrics:
            print(
                f"warning: {name} is left out of the default run: its weights are not here; {spec.how_to_get}",
                file=sys.stderr,
            )


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The run spec of parsed options, resolved once here so that a bad request fails before any work."""
    if args.weights_dir is not None:
        if not args.weights_dir.is_dir():
            raise BenchError(f"--weights-dir {args.weights_dir} is not a folder")
        set_user_weights_dir(args.weights_dir)
    metrics = args.metrics if args.metrics is not None else default_metrics()
    if args.metrics is None:
        _warn_missing_default_metrics(metrics)
    if not metrics:
        raise BenchError("--metrics is empty; name at least one metric (see `python run_bench.py list`)")
    for name in metrics:
        get_metric_spec(name)  # unknown names fail here, before the evaluations' options are read
    parse_dataset_arg(args.dataset)
    if args.workers < 0:
        raise BenchError(f"--workers must be >= 0, got {args.workers}")
    evaluations = _evaluation_names(args)
    spec = RunSpec(
        metrics=metrics,
        dataset=args.dataset,
        split=args.split,
        n=args.n,
        every=args.every,
        evaluations=evaluations,
        options=_options(args, evaluations),
        threats=_threats(args),
        batch_size=args.batch_size,
        device=str(resolve_device(args.device)),
        seed=args.seed,
        seeds=parse_seeds(args.seeds) if getattr(args, "seeds", None) is not None else None,
        out=args.out,
        workers=args.workers,
        download=args.download,
        verify=args.verify,
        perturb=args.perturb,
        save_adversarial=args.save_adversarial,
        precision=args.precision,
    )
    check_spec(spec)  # every value checked now, as for the Python API
    _warn_unused(args, evaluations)  # after the checks: a bad request is one error line, nothing else
    return spec
