"""The files of a training run in its folder ``OUT``, and loading a run's weights back.

A run lives in one folder ``OUT``:

* ``last.pt``: model, optimizer, scheduler, epochs done, step, RNG states and the run's fingerprint,
  rewritten atomically after every epoch; ``resume`` continues from it and ends with the same
  weights as an uninterrupted run (all randomness comes from one checkpointed generator).
* ``log.csv``: one row per epoch (epoch, step, lr, loss, eval_2afc, seconds), rewritten from the
  history stored in ``last.pt``, so it always agrees with the checkpoint.
* ``final.pt``: the model's ``state_dict`` only (``torch.load(..., weights_only=True)``).
* ``train_config.json``: every option, seed, the caller's metadata, versions and wall time.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bench.errors import BenchError
from bench.io import atomic_write, atomic_write_text
from bench.run.records import provenance
from bench.training.config import TrainConfig, TrainTask

CHECKPOINT_FORMAT = 1
LOG_COLUMNS = ("epoch", "step", "lr", "loss", "eval_2afc", "seconds")


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
