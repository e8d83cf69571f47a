"""Weights that ship with the project (a few MB, safetensors: no code), each with a model card beside it.

Each file's sha256 is pinned here (and printed on its card), and checked before the file is read:
a flipped byte would otherwise change every embedding without a word.
"""

from pathlib import Path

from torch import nn

from lipsim_bench.metrics.errors import MetricError
from lipsim_bench.metrics.fingerprint import file_fingerprint
from lipsim_bench.metrics.weightfiles import check_sha256, load_safetensors

WEIGHTS_DIR = Path(__file__).resolve().parent

#: sha256 of every bundled file (also on its model card, ``<name>.md``; tests check they agree).
BUNDLED_SHA256: dict[str, str] = {
    "convsim-tiny": "912073253cd0d5a69f7e83f2866add9276500112852d59f05519e9280312d5cd",
    "lipsim-tiny": "2d9286a2502a5b2f31c91642eedc23c86f905606550b0e8586ca105ac781e552",
    "convsim-tiny-noise": "bea6a55cd225e37857fe4fef38a8806319dd576a3cf2ea76d0603933c5ed1f9d",
    "lipsim-tiny-stlpips": "5c7bba6b46c18aff2e41ba7803a5fe606641921fca0b47c81e49a058045c4f22",
}


def bundled_weights(name: str) -> Path:
    """Path of a bundled weights file ``<name>.safetensors`` (it may be absent in a partial checkout)."""
    return WEIGHTS_DIR / f"{name}.safetensors"


def how_to_restore(name: str) -> str:
    """The fix for a missing or damaged bundled file."""
    return (
        f"reinstall the project (or `git checkout -- metrics/weights/{name}.safetensors`), "
        f"or retrain it with scripts/train_bundled_models.sh (see metrics/weights/{name}.md)"
    )


def load_bundled(model: nn.Module, name: str) -> nn.Module:
    """Load ``<name>.safetensors`` into ``model`` strictly, after checking its pinned sha256."""
    path = bundled_weights(name)
    check_sha256(path, BUNDLED_SHA256[name], how_to_restore(name))
    state, _ = load_safetensors(path, how_to_restore(name))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise MetricError(
            f"{path} does not fit {type(model).__name__} ({str(exc).splitlines()[0]}); {how_to_restore(name)}"
        ) from None
    return model


def bundled_metric_options(name: str, *, default_run: bool = True) -> dict[str, object]:
    """``register_metric`` options shared by every bundled metric: where its file is and how to get it back.

    ``default_run=False``: shipped, but run only when named (not by a plain ``python run_bench.py``).
    """
    return {
        "weights": f"bundled: metrics/weights/{name}.safetensors",
        "bundled": True,
        "available": lambda: bundled_weights(name).is_file(),
        "how_to_get": f"the file ships with the project: {how_to_restore(name)}",
        "fingerprint": lambda: file_fingerprint(bundled_weights(name)),
        "default_run": default_run,
    }
