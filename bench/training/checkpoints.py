"""The files of a training run in its folder ``OUT``, and loading a run's weights back.

A run lives in one folder ``OUT``:

* ``last.pt``: model, optimizer, scheduler, epochs done, step, RNG states and the run's fingerprint
  (a torch file, read back only with ``weights_only=True`` after checking its zip CRCs),
  rewritten atomically after every epoch; ``resume`` continues from it and ends with the same
  weights as an uninterrupted run (all randomness comes from one checkpointed generator).
* ``log.csv``: one row per epoch (epoch, step, lr, loss, eval_2afc, seconds), rewritten from the
  history stored in ``last.pt``, so it always agrees with the checkpoint.
* ``final.safetensors`` (``final.pt`` from older runs): the model's ``state_dict`` only, in a
  format that cannot carry code, with a content hash checked on load (:func:`save_final_weights`).
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

from lipsim_bench.errors import BenchError
from lipsim_bench.io import atomic_write, atomic_write_text
from lipsim_bench.metrics.weightfiles import (
    SAFETENSORS_SUFFIX,
    WeightsFileError,
    load_state_file,
    save_safetensors,
    torch_load,
)
from lipsim_bench.run.records import provenance
from lipsim_bench.training.config import TrainConfig, TrainTask

CHECKPOINT_FORMAT = 1
FINAL_WEIGHTS = "final.safetensors"
RUN_FILES = ("last.pt", FINAL_WEIGHTS, "final.pt")
LOAD_FIX = "pass another checkpoint, or rerun the training that wrote it"
RESUME_KEYS = ("model", "optimizer", "scheduler", "rng", "step", "history", "fingerprint")
LOG_COLUMNS = ("epoch", "step", "lr", "loss", "eval_2afc", "seconds")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Save through a temp file and a rename (a crash never leaves half a file); ``.safetensors`` paths as safetensors."""
    if Path(path).suffix == SAFETENSORS_SUFFIX:
        save_safetensors(obj, Path(path))
        return
    atomic_write(path, lambda handle: torch.save(obj, handle), binary=True)


def save_final_weights(model: nn.Module, out: Path) -> Path:
    """``OUT/final.safetensors``: the trained tensors only, in a file that cannot run code."""
    path = Path(out) / FINAL_WEIGHTS
    save_safetensors({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    return path


def load_resume_checkpoint(path: Path) -> dict[str, Any]:
    """``last.pt`` for ``--resume``: CRC-checked, weights only, every entry present; else one clear error."""
    fix = f"delete {Path(path).name} to start over, or choose another --out"
    try:
        ckpt = torch_load(path, fix)
    except WeightsFileError as exc:
        raise BenchError(f"--resume: {exc}") from None
    missing = [k for k in RESUME_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise BenchError(f"--resume: {path} is not a training checkpoint (no {', '.join(missing)}); {fix}")
    return ckpt


def load_state_dict_file(path: Path) -> dict[str, Tensor]:
    """A state dict from ``final.safetensors``/``final.pt`` or ``last.pt`` (its ``model`` entry); checked, never code."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"checkpoint not found: {path}")
    obj = load_state_file(path, LOAD_FIX)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise BenchError(
            f"checkpoint {path} holds no state dict (expected final.safetensors or last.pt of a training run)"
        )
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
    for name in RUN_FILES:
        if (out / name).exists():
            raise BenchError(
                f"--out {out} already holds a training run ({name}); pass --resume to continue it, or choose another --out"
            )


def write_train_config(task: TrainTask, *, steps: int, history: list[dict[str, Any]], wall_s: float) -> None:
    """``train_config.json``: everything needed to know what produced the final weights."""
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
