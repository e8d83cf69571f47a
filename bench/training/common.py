"""What both training steps share: config, seeding, Adam + warmup/decay, checkpoints, the epoch loop.

A run lives in one folder ``OUT``:

* ``last.pt``: model, optimizer, scheduler, epochs done, step, RNG states and the run's fingerprint,
  rewritten atomically after every epoch; ``resume`` continues from it and ends with the same
  weights as an uninterrupted run (all randomness comes from one checkpointed generator).
* ``log.csv``: one row per epoch (epoch, step, lr, loss, eval_2afc, seconds), rewritten from the
  history stored in ``last.pt``, so it always agrees with the checkpoint.
* ``final.pt``: the model's ``state_dict`` only (``torch.load(..., weights_only=True)``).
* ``train_config.json``: every option, seed, the caller's metadata, versions and wall time.

Determinism: on CPU two runs with the same seed give bitwise-identical weights; on GPU, kernels
without a deterministic implementation may add float-rounding differences.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bench.devices import resolve_device
from bench.errors import BenchError
from bench.records import atomic_write, atomic_write_text, provenance
from bench.scoring import twoafc_score

CHECKPOINT_FORMAT = 1
LOG_COLUMNS = ("epoch", "step", "lr", "loss", "eval_2afc", "seconds")
DECAYS = ("cosine", "linear", "none")

#: A trainable module, or a factory called after seeding (so its initialisation follows the seed).
ModelArg = Union[nn.Module, Callable[[], nn.Module]]

#: Options that may change between an interrupted run and its resumption (they do not alter the weights).
RESUME_FREE = frozenset({"out", "resume", "stop_after_epochs", "device", "workers", "progress", "quiet", "eval_batch_size"})


@dataclass(kw_only=True)
class TrainConfig:
    """Options common to distillation and fine-tuning.

    ``warmup`` is a fraction of all optimizer steps (linear ramp from lr/W to lr), then ``decay``
    takes the lr down to ``min_lr_ratio * lr`` at the last step. ``max_steps`` caps the total number
    of optimizer steps (the schedule is laid out over the capped total). ``stop_after_epochs`` ends
    this invocation early (e.g. to fit a job's time limit); continue later with ``resume=True``.
    ``progress`` shows tqdm bars; ``quiet`` silences the per-epoch lines (log.csv is written anyway).
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

    def validate(self) -> None:
        """Reject nonsense before any work, with the option's CLI name."""
        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"--lr must be a positive number, got {self.lr}"),
            (all(0 <= b < 1 for b in self.betas) and len(self.betas) == 2, f"--betas must be two numbers in [0, 1), got {self.betas}"),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.warmup < 1, f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}"),
            (self.decay in DECAYS, f"--decay must be one of {', '.join(DECAYS)}, got {self.decay!r}"),
            (0 <= self.min_lr_ratio <= 1, f"--min-lr-ratio must be in [0, 1], got {self.min_lr_ratio}"),
            (self.max_steps is None or self.max_steps >= 1, f"--max-steps must be >= 1, got {self.max_steps}"),
            (self.stop_after_epochs is None or self.stop_after_epochs >= 1, f"--stop-after-epochs must be >= 1, got {self.stop_after_epochs}"),
            (self.workers >= 0, f"--workers must be >= 0, got {self.workers}"),
        ]
        for ok, message in checks:
            if not ok:
                raise BenchError(message)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (paths as strings, tuples as lists)."""
        return json.loads(json.dumps(asdict(self), default=str))

    def fingerprint(self) -> dict[str, Any]:
        """The options that decide the weights: a resumed run must match them."""
        return {k: v for k, v in self.to_dict().items() if k not in RESUME_FREE}


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


# ---------------------------------------------------------------- seeding, device, optimisation


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch: model initialisation and anything outside our generator."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    torch.manual_seed(seed)


def build_module(model: ModelArg, seed: int) -> nn.Module:
    """A module as is; a factory is called after seeding, so its initialisation follows the seed."""
    if isinstance(model, nn.Module):
        return model
    seed_everything(seed)
    built = model()
    if not isinstance(built, nn.Module):
        raise BenchError(f"the model factory returned {type(built).__name__}, not an nn.Module")
    return built


def require_embed(model: nn.Module, role: str) -> None:
    """Training needs ``embed(x)``; say so plainly instead of failing deep inside a step."""
    if not callable(getattr(model, "embed", None)):
        raise BenchError(f"the {role} ({type(model).__name__}) has no embed(x) method; wrap it as a PerceptualMetric")


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters that need gradients; none is a user error (e.g. pixel-l2, or a frozen metric)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise BenchError(f"{type(model).__name__} has no trainable parameters; nothing to train")
    return params


class WarmupDecay:
    """lr multiplier at optimizer step ``s`` (0-based): linear warmup, then cosine/linear/no decay.

    A callable object rather than a closure so that ``LambdaLR.state_dict`` saves its settings.
    """

    def __init__(self, total_steps: int, warmup_steps: int, decay: str = "cosine", min_ratio: float = 0.0) -> None:
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.decay == "none":
            return 1.0
        span = max(1, self.total_steps - 1 - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if self.decay == "cosine" else 1.0 - progress
        return self.min_ratio + (1.0 - self.min_ratio) * shape


def make_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """Adam with the paper's betas (0.5, 0.9) by default."""
    return torch.optim.Adam(params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule over ``total_steps``; the warmup never takes every step."""
    warmup_steps = min(round(config.warmup * total_steps), max(0, total_steps - 1))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupDecay(total_steps, warmup_steps, config.decay, config.min_lr_ratio))


# ---------------------------------------------------------------- files


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through a temp file and a rename: a crash never leaves half a checkpoint."""
    atomic_write(path, lambda handle: torch.save(obj, handle), binary=True)


def load_state_dict_file(path: Path) -> dict[str, Tensor]:
    """A state dict from ``final.pt`` (plain) or ``last.pt`` (its ``model`` entry); safe loading only."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise BenchError(f"checkpoint {path} is not a readable torch state dict ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise BenchError(f"checkpoint {path} holds no state dict (expected final.pt or last.pt of a training run)")
    return obj


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Load a checkpoint strictly: a silent partial load would train or score the wrong network."""
    state = load_state_dict_file(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise BenchError(f"checkpoint {path} does not fit {type(model).__name__}: {detail}") from None
    return model


def write_log(out: Path, history: list[dict[str, Any]]) -> None:
    """``log.csv`` from the whole history (atomic), so it matches ``last.pt`` even after a crash."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in LOG_COLUMNS})
    atomic_write_text(out / "log.csv", buffer.getvalue())


def format_epoch(row: Mapping[str, Any], epochs: int) -> str:
    """The line printed after each epoch."""
    text = f"epoch {row['epoch']}/{epochs}  step {row['step']}  lr {row['lr']:.3g}  loss {row['loss']:.5f}"
    if row.get("eval_2afc") is not None:
        text += f"  eval 2AFC {row['eval_2afc']:.2f}%"
    return text + f"  ({row['seconds']:.1f} s)"


def check_out_dir(config: TrainConfig) -> None:
    """Refuse to overwrite a previous run unless asked to resume it (checked before expensive work)."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} is a file; give a folder for the run")
    if config.resume:
        return
    for name in ("last.pt", "final.pt"):
        if (out / name).exists():
            raise BenchError(f"--out {out} already holds a training run ({name}); pass --resume to continue it, or choose another --out")


# ---------------------------------------------------------------- evaluation


def metric_distance(model: nn.Module, e_a: Tensor, e_b: Tensor) -> Tensor:
    """The model's own ``distance`` when it has one, else 1 - cosine (the PerceptualMetric default)."""
    distance = getattr(model, "distance", None)
    if callable(distance):
        return distance(e_a, e_b)
    return 1.0 - F.cosine_similarity(e_a.flatten(1), e_b.flatten(1), dim=1)


@torch.no_grad()
def evaluate_2afc(model: nn.Module, dataset: Dataset, *, batch_size: int = 64, device: torch.device | str = "cpu", workers: int = 0) -> float:
    """2AFC score (%) of ``model`` on a 2AFC dataset, in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    d0s, d1s, ps = [], [], []
    try:
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers):
            ref, x0, x1 = (batch[k].to(device) for k in ("ref", "x0", "x1"))
            e_ref, e0, e1 = model.embed(ref), model.embed(x0), model.embed(x1)
            d0s.append(metric_distance(model, e_ref, e0).float().cpu())
            d1s.append(metric_distance(model, e_ref, e1).float().cpu())
            ps.append(batch["p"].float())
    finally:
        model.train(was_training)
    return twoafc_score(torch.cat(d0s), torch.cat(d1s), torch.cat(ps))


# ---------------------------------------------------------------- the loop


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: Mapping[str, Any], generator: torch.Generator) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _mismatch(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [f"{k}: was {saved.get(k)!r}, now {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]


def _fingerprint(task: TrainTask) -> dict[str, Any]:
    return json.loads(json.dumps({"kind": task.kind, **task.config.fingerprint(), **task.identity}, default=str))


def write_train_config(task: TrainTask, *, steps: int, history: list[dict[str, Any]], wall_s: float) -> None:
    """``train_config.json``: everything needed to know what produced ``final.pt``."""
    payload = {
        "kind": task.kind,
        **dict(task.meta),
        "config": task.config.to_dict(),
        "identity": task.identity,
        "steps": steps,
        "epochs_done": len(history),
        "final": history[-1] if history else None,
        "wall_s_this_invocation": round(wall_s, 3),
        "train_s_total": round(sum(float(r["seconds"]) for r in history), 3),
        "provenance": provenance(),
    }
    atomic_write_text(Path(task.config.out) / "train_config.json", json.dumps(payload, indent=2, default=str) + "\n")


def train(task: TrainTask) -> TrainResult:
    """Run (or resume) the epoch loop of ``task``; write ``last.pt`` each epoch and ``final.pt`` at the end."""
    started = time.perf_counter()
    cfg = task.config
    cfg.validate()
    check_out_dir(cfg)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    last_path = out / "last.pt"

    model = task.model.to(device)
    params = trainable_parameters(model)
    n = len(task.dataset)
    if n == 0:
        raise BenchError("the training set is empty")
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch if cfg.max_steps is None else min(cfg.epochs * steps_per_epoch, cfg.max_steps)

    seed_everything(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = make_optimizer(params, cfg)
    scheduler = make_scheduler(optimizer, total, cfg)
    fingerprint = _fingerprint(task)
    step, history = 0, []

    if last_path.exists():  # check_out_dir made sure resume was asked for
        try:
            ckpt = torch.load(last_path, map_location="cpu", weights_only=True)
            saved = json.loads(ckpt["fingerprint"])
        except Exception as exc:  # a truncated or foreign file; atomic saves make this rare
            raise BenchError(f"--resume: {last_path} is unreadable ({type(exc).__name__}); delete it to start over, or choose another --out") from None
        diff = _mismatch(saved, fingerprint)
        if diff:
            raise BenchError(f"--resume: {last_path} was made with other settings ({'; '.join(diff)}); use the same options, or another --out")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        _restore_rng(ckpt["rng"], generator)
        step, history = int(ckpt["step"]), json.loads(ckpt["history"])
        if not cfg.quiet:
            tqdm.write(f"resuming {out} after epoch {len(history)} (step {step} of {total})")
    elif cfg.resume and not cfg.quiet:
        tqdm.write(f"--resume: no {last_path} yet; starting from scratch")

    epochs_this_run = 0
    for epoch in range(len(history), cfg.epochs):
        if step >= total or (cfg.stop_after_epochs is not None and epochs_this_run >= cfg.stop_after_epochs):
            break
        epoch_started = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator).tolist()
        batches = [order[i : i + cfg.batch_size] for i in range(0, n, cfg.batch_size)][: total - step]
        loader = DataLoader(task.dataset, batch_sampler=batches, num_workers=cfg.workers, collate_fn=task.collate_fn)
        loss_sum, count, lr = 0.0, 0, optimizer.param_groups[0]["lr"]
        bar = tqdm(loader, total=len(batches), desc=f"{task.kind} epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not cfg.progress)
        for batch in bar:
            loss, k = task.step_loss(model, batch, generator, device)
            if not torch.isfinite(loss):
                raise BenchError(f"{task.kind}: the loss became {loss.item()} at step {step + 1}; lower --lr")
            lr = optimizer.param_groups[0]["lr"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            loss_sum += float(loss.detach()) * k
            count += k
            bar.set_postfix(loss=f"{loss_sum / count:.4f}")
        bar.close()
        eval_score = None
        if task.eval_set is not None:
            eval_score = evaluate_2afc(
                model, task.eval_set, batch_size=cfg.eval_batch_size or cfg.batch_size, device=device, workers=cfg.workers
            )
        row = {
            "epoch": epoch + 1,
            "step": step,
            "lr": lr,
            "loss": loss_sum / max(count, 1),
            "eval_2afc": eval_score,
            "seconds": round(time.perf_counter() - epoch_started, 3),
        }
        history.append(row)
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "kind": task.kind,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch + 1,
            "step": step,
            "rng": _rng_state(generator),
            "fingerprint": json.dumps(fingerprint),
            "history": json.dumps(history),
        }
        atomic_torch_save(checkpoint, last_path)
        write_log(out, history)
        if not cfg.quiet:
            tqdm.write(format_epoch(row, cfg.epochs))
        epochs_this_run += 1

    finished = step >= total or len(history) >= cfg.epochs
    wall_s = time.perf_counter() - started
    final_path = None
    if finished:
        final_path = out / "final.pt"
        atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, final_path)
        write_train_config(task, steps=step, history=history, wall_s=wall_s)
    return TrainResult(model=model, out_dir=out, history=history, steps=step, finished=finished, final_path=final_path, wall_s=wall_s)

