"""Checkpoints that ship with the project (a few MB), each with a model card beside it."""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent


def bundled_weights(name: str) -> Path:
    """Path of a bundled checkpoint ``<name>.pt`` (it may be absent in a partial checkout)."""
    return WEIGHTS_DIR / f"{name}.pt"
