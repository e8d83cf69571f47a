"""What both training steps share as data: the options (:class:`TrainConfig`), the task the loop runs, the result."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from lipsim_bench.errors import BenchError

DECAYS = ("cosine", "linear", "none")

#: A trainable module, or a factory called after seeding (so its initialisation follows the seed).
ModelArg = Union[nn.Module, Callable[[], nn.Module]]

#: Options added after runs were already being resumed, with their "off" value: left out of the fingerprint when off.
LATER_OPTIONS: dict[str, object] = {"noise_sigma": 0.0, "color_jitter": False, "teacher_projection": None}

#: The largest --noise-sigma: images are in [0, 1], and randomized smoothing trains at sigma 0.12 to 1.0
#: (Cohen et al. 2019); past 1 the noise's spread exceeds the whole pixel range and the image is lost in it.
MAX_NOISE_SIGMA = 1.0

#: Seeds numpy and torch both accept.
MAX_SEED = 2**32 - 1

#: Options that may change between an interrupted run and its resumption (they do not alter the weights).
RESUME_FREE = frozenset(
    {"out", "resume", "stop_after_epochs", "device", "workers", "progress", "quiet", "eval_batch_size"}
)


@dataclass(kw_only=True)
class TrainConfig:
    """Options common to distillation and fine-tuning.

    ``warmup`` is a fraction of all optimizer steps (linear ramp from lr/W to lr), then ``decay``
    takes the lr down to ``min_lr_ratio * lr`` at the last step. ``max_steps`` caps the total number
    of optimizer steps (the schedule is laid out over the capped total). ``stop_after_epochs`` ends
    this invocation early (e.g. to fit a job's time limit); continue later with ``resume=True``.
    ``progress`` shows tqdm bars; ``quiet`` silences the per-epoch lines (log.csv is written anyway).
    ``noise_sigma`` > 0 adds unclamped N(0, sigma^2) noise per pixel to the model's input (fine-tuning:
    the reference image only; distillation: the student's views), drawn from the run's generator,
    so a metric can be trained for randomized smoothing at that sigma.
    """

    out: Path
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0
    warmup: float = 0.05
    decay: str = "cosine"
    min_lr_ratio: float = 0.0
    seed: int = 0
    max_steps: int | None = None
    resume: bool = False
    stop_after_epochs: int | None = None
    device: str | None = None
    workers: int = 0
    eval_batch_size: int | None = None
    progress: bool = True
    quiet: bool = False
    noise_sigma: float = 0.0

    def validate(self) -> None:
        """Reject nonsense before any work, with the option's CLI name."""
        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"--lr must be a positive number, got {self.lr}"),
            (
                all(0 <= b < 1 for b in self.betas) and len(self.betas) == 2,
                f"--betas must be two numbers in [0, 1), got {self.betas}",
            ),
            (
                _finite_nonnegative(self.weight_decay),
                f"--weight-decay must be a finite number >= 0, got {self.weight_decay}",
            ),
            (0 <= self.warmup < 1, f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}"),
            (self.decay in DECAYS, f"--decay must be one of {', '.join(DECAYS)}, got {self.decay!r}"),
            (0 <= self.min_lr_ratio <= 1, f"--min-lr-ratio must be in [0, 1], got {self.min_lr_ratio}"),
            (self.max_steps is None or self.max_steps >= 1, f"--max-steps must be >= 1, got {self.max_steps}"),
            (
                self.stop_after_epochs is None or self.stop_after_epochs >= 1,
                f"--stop-after-epochs must be >= 1, got {self.stop_after_epochs}",
            ),
            (self.workers >= 0, f"--workers must be >= 0, got {self.workers}"),
            (
                _finite_nonnegative(self.noise_sigma),
                f"--noise-sigma must be a finite number >= 0 (0: no noise), got {self.noise_sigma}",
            ),
            (
                not _finite_nonnegative(self.noise_sigma) or float(self.noise_sigma) <= MAX_NOISE_SIGMA,
                f"--noise-sigma {self.noise_sigma} is above {MAX_NOISE_SIGMA:g}: on [0, 1] images the noise would swamp the image "
                "(randomized smoothing trains at 0.12 to 1); give a sigma in [0, 1]",
            ),
            (
                _is_int(self.seed) and 0 <= self.seed <= MAX_SEED,
                f"--seed must be an integer from 0 to {MAX_SEED}, got {self.seed}",
            ),
            (
                self.eval_batch_size is None or self.eval_batch_size >= 1,
                f"--eval-batch-size must be >= 1, got {self.eval_batch_size}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise BenchError(message)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (paths as strings, tuples as lists)."""
        return json.loads(json.dumps(asdict(self), default=str))

    def fingerprint(self) -> dict[str, Any]:
        """The options that decide the weights: a resumed run must match them.

        Options added later (:data:`LATER_OPTIONS`) enter only when they are on, so a ``last.pt``
        written before they existed still resumes (its fingerprint has no such key).
        """
        values = self.to_dict()
        off = {k for k, v in LATER_OPTIONS.items() if values.get(k, v) == v}
        return {k: v for k, v in values.items() if k not in RESUME_FREE | off}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_nonnegative(value: object) -> bool:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and number >= 0


@dataclass
class TrainResult:
    """What a training call hands back; ``final_path`` is None when the run stopped early."""

    model: nn.Module
    out_dir: Path
    history: list[dict[str, Any]]
    steps: int
    finished: bool
    final_path: Path | None
    wall_s: float


@dataclass
class TrainTask:
    """One training run, as the loop sees it.

    ``step_loss(model, batch, generator, device)`` returns the batch's loss and its number of
    examples; it draws every random number (augmentation) from ``generator``. ``identity`` says
    what was trained on what (names, sizes): a resumed run must match it too.
    """

    kind: str
    model: nn.Module
    dataset: Dataset
    step_loss: Callable[[nn.Module, Any, torch.Generator, torch.device], tuple[Tensor, int]]
    config: TrainConfig
    identity: dict[str, Any] = field(default_factory=dict)
    eval_set: Dataset | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    collate_fn: Callable[[list[Any]], Any] | None = None
