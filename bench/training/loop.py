"""The epoch loop both training steps run: seeding, Adam + warmup/decay, resume from ``last.pt``.

Determinism: on CPU two runs with the same seed give bitwise-identical weights; on GPU, kernels
without a deterministic implementation may add float-rounding differences. All randomness of a run
comes from one generator saved in ``last.pt``, so a resumed run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lipsim_bench.devices import resolve_device
from lipsim_bench.errors import BenchError
from lipsim_bench.training.checkpoints import (
    CHECKPOINT_FORMAT,
    atomic_torch_save,
    check_out_dir,
    load_resume_checkpoint,
    save_final_weights,
    write_log,
    write_train_config,
)
from lipsim_bench.training.config import ModelArg, TrainConfig, TrainResult, TrainTask
from lipsim_bench.training.evaluate import evaluate_2afc


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


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, config: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule over ``total_steps``; the warmup never takes every step."""
    warmup_steps = min(round(config.warmup * total_steps), max(0, total_steps - 1))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupDecay(total_steps, warmup_steps, config.decay, config.min_lr_ratio)
    )


def format_epoch(row: Mapping[str, Any], epochs: int) -> str:
    """The line printed after each epoch."""
    text = f"epoch {row['epoch']}/{epochs}  step {row['step']}  lr {row['lr']:.3g}  loss {row['loss']:.5f}"
    if row.get("eval_2afc") is not None:
        text += f"  eval 2AFC {row['eval_2afc']:.2f}%"
    return text + f"  ({row['seconds']:.1f} s)"


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
        ckpt = load_resume_checkpoint(last_path)  # CRC-checked, weights only: one clear line otherwise
        try:
            saved = json.loads(ckpt["fingerprint"])
        except (TypeError, ValueError) as exc:
            raise BenchError(
                f"--resume: {last_path} is unreadable ({type(exc).__name__}); delete it to start over, or choose another --out"
            ) from None
        diff = _mismatch(saved, fingerprint)
        if diff:
            raise BenchError(
                f"--resume: {last_path} was made with other settings ({'; '.join(diff)}); use the same options, or another --out"
            )
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
        bar = tqdm(
            loader,
            total=len(batches),
            desc=f"{task.kind} epoch {epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=not cfg.progress,
        )
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
                model,
                task.eval_set,
                batch_size=cfg.eval_batch_size or cfg.batch_size,
                device=device,
                workers=cfg.workers,
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
        final_path = save_final_weights(model, out)
        write_train_config(task, steps=step, history=history, wall_s=wall_s)
    return TrainResult(
        model=model, out_dir=out, history=history, steps=step, finished=finished, final_path=final_path, wall_s=wall_s
    )
