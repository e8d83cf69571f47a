"""Checkpoints that ship with the project (a few MB), each with a model card beside it."""

from pathlib import Path

import torch
from torch import nn

from metrics.fingerprint import file_fingerprint

WEIGHTS_DIR = Path(__file__).resolve().parent


def bundled_weights(name: str) -> Path:
    """Path of a bundled checkpoint ``<name>.pt`` (it may be absent in a partial checkout)."""
    return WEIGHTS_DIR / f"{name}.pt"


def load_bundled(model: nn.Module, name: str) -> nn.Module:
    """Load ``<name>.pt`` into ``model`` strictly (weights only: a checkpoint cannot run code)."""
    state = torch.load(bundled_weights(name), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model


def bundled_metric_options(name: str) -> dict[str, object]:
    """``register_metric`` options shared by every bundled metric: where its file is and how to get it back."""
    return {
        "weights": f"bundled: metrics/weights/{name}.pt",
        "bundled": True,
        "available": lambda: bundled_weights(name).is_file(),
        "how_to_get": f"the file ships with the project: reinstall it, or retrain it (see metrics/weights/{name}.md)",
        "fingerprint": lambda: file_fingerprint(bundled_weights(name)),
    }
