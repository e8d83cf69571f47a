"""Optional libraries and the package extra each one comes with.

The default run needs none of them (pixel, CNN and LipSim metrics, the project's own APGD/PGD), so they
are extras (``pip install 'lipsim-bench[clip]'``); an adapter or attack imports its library through
:func:`require`, and a missing one is one line naming the extra to install, never a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from lipsim_bench.errors import BenchError

#: top-level import name -> the extra of lipsim-bench that installs it (pyproject.toml's optional-dependencies)
EXTRA_OF: dict[str, str] = {
    "open_clip": "clip",
    "timm": "dino",
    "dreamsim": "dreamsim",
    "peft": "dreamsim",
    "lpips": "lpips",
    "foolbox": "attacks",
    "torchattacks": "attacks",
}


class MissingExtraError(BenchError, ImportError):
    """An optional library is not installed; the message names the extra that installs it."""


def missing_extras(modules: tuple[str, ...]) -> list[str]:
    """The extras to install for ``modules`` (found without importing them: cheap enough for listings)."""
    missing = [m for m in modules if importlib.util.find_spec(m.split(".")[0]) is None]
    return sorted({EXTRA_OF.get(m.split(".")[0], "all") for m in missing})


def require(module: str, needed_for: str) -> ModuleType:
    """Import ``module`` (e.g. ``"open_clip"``, ``"dreamsim.model"``) for ``needed_for``, or say which extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        top = module.split(".")[0]
        missing = (error.name or top).split(".")[0]
        extra = EXTRA_OF.get(top, "all")
        via = "" if missing == top else f" ({top} imports {missing})"
        raise MissingExtraError(
            f"{needed_for} needs the library {missing}, which is not installed{via}: "
            f"pip install 'lipsim-bench[{extra}]' (or 'lipsim-bench[all]')"
        ) from None
