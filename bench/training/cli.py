"""``run_bench.py train distill ...`` and ``run_bench.py train finetune ...``.

Models are named by a student preset (:data:`STUDENTS`), a registered metric (its weights become
trainable), or a checkpoint path (``final.safetensors``/``last.pt``) whose folder holds the
``train_config.json`` naming its architecture; ``--init CHECKPOINT`` loads weights into a named
model. So distil-then-fine-tune is ``train distill --student P --out A`` then
``train finetune --metric A/final.safetensors --out B``.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from lipsim_bench.errors import BenchError
from lipsim_bench.training.checkpoints import load_weights
from lipsim_bench.training.distill import DistillConfig, distill
from lipsim_bench.training.evaluate import resolve_eval_split
from lipsim_bench.training.finetune import FinetuneConfig, finetune
from lipsim_bench.training.loop import seed_everything

#: Trainable student presets by name, each a zero-argument factory of a module with ``embed``
#: (ideally a PerceptualMetric with an ``input_size`` attribute). Filled by the project's wiring.
STUDENTS: dict[str, Callable[[], nn.Module]] = {}


def register_student(name: str) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Decorator form of ``STUDENTS[name] = factory``."""

    def decorator(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        STUDENTS[name] = factory
        return factory

    return decorator


def _looks_like_path(name: str) -> bool:
    return name.endswith((".pt", ".safetensors")) or "/" in name or "\\" in name or Path(name).is_file()


def build_model(name: str, *, option: str = "--student", init: str | None = None) -> tuple[nn.Module, str]:
    """The trainable model named ``name`` and its architecture name (recorded for later loading)."""
    if name in STUDENTS:
        model, arch = STUDENTS[name](), name
    elif _looks_like_path(name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise BenchError(f"{option}: checkpoint not found: {path}")
        config_path = path.parent / "train_config.json"
        try:
            arch = json.loads(config_path.read_text(encoding="utf-8"))["model"]
        except (OSError, ValueError, KeyError, TypeError):
            raise BenchError(
                f"{option} {path}: no train_config.json naming its architecture beside it; use {option} PRESET --init {path}"
            ) from None
        if _looks_like_path(str(arch)):
            raise BenchError(f"{config_path}: model {arch!r} is not a preset or metric name")
        model, arch = build_model(str(arch), option=option)
        load_weights(model, path)
    else:
        model, arch = _trainable_metric(name, option), name
    if init is not None:
        load_weights(model, Path(init).expanduser())
    return model, arch


def _trainable_metric(name: str, option: str) -> nn.Module:
    from lipsim_bench.metrics import MetricError, WeightsUnavailableError, create_metric, list_metrics

    try:
        metric = create_metric(name)
    except WeightsUnavailableError as exc:
        raise BenchError(f"{option}: {exc}") from None
    except MetricError:
        presets = ", ".join(sorted(STUDENTS)) or "none"
        raise BenchError(
            f"{option} {name!r} is neither a student preset (known: {presets}) nor a registered metric "
            f"(known: {', '.join(list_metrics())}) nor a checkpoint file"
        ) from None
    metric.requires_grad_(True)
    return metric.train()


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are the project's one line (``error: ...``, exit 2), not a usage block."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise BenchError(f"{message} (see `{self.prog} --help`)")


def _betas(text: str) -> tuple[float, float]:
    try:
        b1, b2 = (float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give two numbers like 0.5,0.9") from None
    return b1, b2


def _add_common(parser: argparse.ArgumentParser, config_cls: type) -> None:
    d = config_cls(out=Path("."))
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, default=d.epochs, help=f"(default: {d.epochs})")
    opt.add_argument("--batch-size", type=int, default=d.batch_size, help=f"(default: {d.batch_size})")
    opt.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default: {d.lr}; the paper: 0.01)")
    opt.add_argument("--betas", type=_betas, default=d.betas, help="Adam betas (default: 0.5,0.9 as in the paper)")
    opt.add_argument("--weight-decay", type=float, default=d.weight_decay, help="(default: 0)")
    opt.add_argument(
        "--warmup",
        type=float,
        default=d.warmup,
        help=f"linear warmup, as a fraction of all steps (default: {d.warmup})",
    )
    opt.add_argument(
        "--decay", choices=("cosine", "linear", "none"), default=d.decay, help="lr decay after warmup (default: cosine)"
    )
    opt.add_argument("--min-lr-ratio", type=float, default=d.min_lr_ratio, help="final lr / lr (default: 0)")
    opt.add_argument("--max-steps", type=int, default=None, help="cap on optimizer steps (smoke tests)")
    opt.add_argument(
        "--seed", type=int, default=d.seed, help="seed of initialisation, shuffling and augmentation (default: 0)"
    )
    opt.add_argument(
        "--noise-sigma",
        type=float,
        default=d.noise_sigma,
        metavar="S",
        help="add N(0, S^2) noise per pixel, unclamped, to the reference (finetune) or the student's views (distill): "
        "training for randomized smoothing at sigma S (default: 0, off)",
    )

    run = parser.add_argument_group("running")
    run.add_argument(
        "--out", type=Path, required=True, help="run folder: last.pt, log.csv, final.safetensors, train_config.json"
    )
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    run.add_argument(
        "--stop-after-epochs",
        type=int,
        default=None,
        help="end this invocation after N epochs (continue with --resume)",
    )
    run.add_argument(
        "--init",
        default=None,
        help="load this checkpoint (final.safetensors or last.pt) into the model before training",
    )
    run.add_argument("--eval-dataset", default=None, help="2AFC set scored after each epoch: NAME[:ROOT], e.g. sample")
    run.add_argument(
        "--eval-split",
        default=None,
        help="its split (default: its validation split, val, when it has one, else its test split, with a warning: "
        "a recipe chosen on test is not a fair test number)",
    )
    run.add_argument("--eval-n", type=int, default=None, help="score only its first N triplets")
    run.add_argument("--eval-batch-size", type=int, default=None, help="(default: --batch-size)")
    run.add_argument("--device", default=None, help="cpu, cuda or cuda:K (default: cuda when available)")
    run.add_argument("--workers", type=int, default=0, help="image-loading worker processes (default: 0)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (epoch lines are still printed)")
    run.add_argument("--quiet", action="store_true", help="no epoch lines either (log.csv is written anyway)")


def build_train_parser(prog: str = "run_bench.py train") -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog=prog,
        description="Train a perceptual metric the LipSim way: distil a teacher's embeddings, then fine-tune on 2AFC judgments.",
        epilog=(
            "examples:\n"
            "  python run_bench.py train distill --student lipsim-tiny --teacher dreamsim --images dataset:sample:train --out runs/distill\n"
            "  python run_bench.py train finetune --metric runs/distill/final.safetensors --dataset sample --split train "
            "--eval-dataset sample --out runs/finetune"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    steps = parser.add_subparsers(dest="step", required=True, metavar="{distill,finetune}")

    dist = steps.add_parser("distill", help="student learns the teacher's centred, scaled embeddings")
    what = dist.add_argument_group("what to train")
    what.add_argument("--student", required=True, help="student preset, registered metric, or checkpoint")
    what.add_argument(
        "--teacher", required=True, help="registered metric (or a training run's final.safetensors) giving the targets"
    )
    what.add_argument("--images", required=True, help="image FOLDER (recursive .png/.jpg) or dataset:NAME[:ROOT]:SPLIT")
    what.add_argument(
        "--image-size", type=int, default=None, help="resize + centre-crop side (default: the student's input_size)"
    )
    what.add_argument(
        "--target-scale",
        type=float,
        default=DistillConfig(out=Path(".")).target_scale,
        help="targets = SCALE x (unit teacher embedding - its mean over the images) (default: 20; sets the scale of certified radii)",
    )
    what.add_argument(
        "--teacher-projection",
        type=int,
        default=None,
        metavar="K",
        help="project the teacher's embeddings to K numbers with a seeded Gaussian matrix first (for a teacher wider "
        "than the student, e.g. stlpips-alex's 158,144 per 64x64 image; K = the student's size)",
    )
    _add_common(dist, DistillConfig)
    dist.set_defaults(func=run_distill)

    fine = steps.add_parser("finetune", help="hinge loss on a 2AFC split")
    what = fine.add_argument_group("what to train")
    what.add_argument("--metric", required=True, help="student preset, registered metric, or checkpoint")
    what.add_argument("--dataset", default="sample", help="2AFC set NAME[:ROOT] (default: sample)")
    what.add_argument("--split", default="train", help="its split (default: train)")
    what.add_argument("--n", type=int, default=None, help="use only its first N triplets")
    what.add_argument("--margin", type=float, default=0.5, help="hinge margin m (default: 0.5; the paper: 0.2 and 0.5)")
    what.add_argument("--rot90", action="store_true", help="also turn each triplet by a random multiple of 90 degrees")
    what.add_argument("--no-flip", action="store_true", help="no random horizontal flip of triplets")
    what.add_argument(
        "--color-jitter",
        action="store_true",
        help="colour jitter (p 0.8) + grayscale (p 0.2) on each image of a triplet independently",
    )
    _add_common(fine, FinetuneConfig)
    fine.set_defaults(func=run_finetune)
    return parser


def _common_config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "out": args.out,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "betas": tuple(args.betas),
        "weight_decay": args.weight_decay,
        "warmup": args.warmup,
        "decay": args.decay,
        "min_lr_ratio": args.min_lr_ratio,
        "seed": args.seed,
        "max_steps": args.max_steps,
        "resume": args.resume,
        "stop_after_epochs": args.stop_after_epochs,
        "device": args.device,
        "workers": args.workers,
        "eval_batch_size": args.eval_batch_size,
        "progress": not args.no_progress,
        "quiet": args.quiet,
        "noise_sigma": args.noise_sigma,
    }


def _eval_set(args: argparse.Namespace):
    """The 2AFC split scored after each epoch (None without --eval-dataset); ``args.eval_split`` becomes its name."""
    if args.eval_n is not None and args.eval_n < 1:
        raise BenchError(f"--eval-n must be a positive number of triplets, got {args.eval_n}")
    if args.eval_dataset is None:
        if args.eval_split is not None or args.eval_n is not None:
            raise BenchError("--eval-split/--eval-n need --eval-dataset")
        return None
    from lipsim_bench.datasets import create_dataset

    args.eval_split, _ = resolve_eval_split(args.eval_dataset, args.eval_split)
    dataset = create_dataset(args.eval_dataset, args.eval_split).head(args.eval_n)
    dataset.check_files()
    if not args.quiet:
        print(f"eval: {dataset.name}'s {dataset.split} split ({len(dataset)} triplets) is scored after each epoch")
    return dataset


def _meta(args: argparse.Namespace, arch: str, eval_set=None) -> dict[str, Any]:
    """train_config.json's record of the command; ``eval`` names the split the epoch scores were read on."""
    argv = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    meta: dict[str, Any] = {"model": arch, "args": argv, "command": " ".join(sys.argv)}
    if eval_set is not None:
        meta["eval"] = {"dataset": args.eval_dataset, "split": eval_set.split, "n_triplets": len(eval_set)}
    return meta


def _report(result, verb: str) -> int:
    if result.finished:
        print(
            f"{verb}: {result.steps} steps; wrote {result.out_dir}/final.safetensors, train_config.json, log.csv ({result.wall_s:.1f} s)"
        )
    else:
        print(f"{verb}: stopped after epoch {len(result.history)}; continue with the same command plus --resume")
    return 0


def _teacher(name: str) -> nn.Module | str:
    """A registered metric name as is (distill builds it), or a checkpoint of a training run, frozen."""
    if name in STUDENTS or not _looks_like_path(name):
        return name
    model, _ = build_model(name, option="--teacher")
    return model.requires_grad_(False).eval()


def warn_if_test_split(dataset: str, split: str | None, option: str) -> str | None:
    """Training on the split the benchmark scores by default: allowed (a user may mean it), said in one line."""
    from lipsim_bench.datasets import parse_dataset_arg

    family, _ = parse_dataset_arg(dataset)
    if (split or family.default_split) != family.default_split:
        return None
    line = (
        f"warning: {option} trains on {family.name}'s {family.default_split} split, the one the benchmark scores: "
        f"this model's scores there will not measure generalisation; train on another split (e.g. train)"
    )
    print(line, file=sys.stderr)
    return line


def _images_split(images: str) -> None:
    """``--images dataset:NAME[:ROOT]:SPLIT``: the same warning for distillation's images."""
    from lipsim_bench.training.distill import DATASET_PREFIX

    if images.startswith(DATASET_PREFIX):
        name_root, sep, split = images[len(DATASET_PREFIX) :].rpartition(":")
        if sep and name_root and split:
            warn_if_test_split(name_root, split, "distill (--images)")


def run_distill(args: argparse.Namespace) -> int:
    config = DistillConfig(
        **_common_config(args),
        target_scale=args.target_scale,
        image_size=args.image_size,
        teacher_projection=args.teacher_projection,
    )
    config.validate()
    _images_split(args.images)
    seed_everything(args.seed)  # the student's initialisation follows the seed
    student, arch = build_model(args.student, option="--student", init=args.init)
    eval_set = _eval_set(args)
    result = distill(
        student, _teacher(args.teacher), args.images, config, eval_set=eval_set, meta=_meta(args, arch, eval_set)
    )
    return _report(result, "distill")


def run_finetune(args: argparse.Namespace) -> int:
    from lipsim_bench.datasets import create_dataset

    config = FinetuneConfig(
        **_common_config(args),
        margin=args.margin,
        flip=not args.no_flip,
        rot90=args.rot90,
        color_jitter=args.color_jitter,
    )
    config.validate()
    if args.n is not None and args.n < 1:
        raise BenchError(f"--n must be a positive number of triplets, got {args.n}")
    dataset = create_dataset(args.dataset, args.split).head(args.n)
    warn_if_test_split(args.dataset, args.split, "finetune")
    seed_everything(args.seed)
    metric, arch = build_model(args.metric, option="--metric", init=args.init)
    eval_set = _eval_set(args)
    result = finetune(metric, dataset, config, eval_set=eval_set, meta=_meta(args, arch, eval_set))
    return _report(result, "finetune")


def cmd_train(argv: Sequence[str]) -> int:
    """Entry point of ``run_bench.py train ...``; BenchError propagates to the main CLI (one line, exit 2)."""
    args = build_train_parser().parse_args(list(argv))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(
            f"interrupted: {args.out}/last.pt holds the last finished epoch; rerun with --resume to continue",
            file=sys.stderr,
        )
        return 130
