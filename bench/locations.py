"""Where lipsim-bench keeps things: one family of environment variables, read in one place.

| what | variable | default |
|---|---|---|
| everything below, unless set on its own | ``LIPSIM_BENCH_CACHE`` | ``~/.cache/lipsim_bench`` |
| datasets (NIGHT under ``nights/``; the built ``sample`` set lives in the cache) | ``LIPSIM_BENCH_DATA`` | ``$LIPSIM_BENCH_CACHE`` |
| the user's weights folder (``--weights-dir``): LipSim checkpoints and hub-layout caches | ``LIPSIM_BENCH_WEIGHTS_DIR`` | ``$LIPSIM_BENCH_CACHE/weights`` |
| run folders | ``LIPSIM_BENCH_RESULTS`` | ``./results`` |
| plugin files and modules to import (``--plugin`` / ``--import``), separated by ``os.pathsep`` | ``LIPSIM_BENCH_PLUGINS`` | none |

``LIPSIM_BENCH_WEIGHTS`` (the LipSim checkpoint folder of earlier versions) is still read as a
fallback for ``LIPSIM_BENCH_WEIGHTS_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

from lipsim_bench.errors import BenchError

CACHE_ENV = "LIPSIM_BENCH_CACHE"
DATA_ENV = "LIPSIM_BENCH_DATA"
WEIGHTS_ENV = "LIPSIM_BENCH_WEIGHTS_DIR"
LEGACY_WEIGHTS_ENV = "LIPSIM_BENCH_WEIGHTS"
RESULTS_ENV = "LIPSIM_BENCH_RESULTS"
PLUGINS_ENV = "LIPSIM_BENCH_PLUGINS"


def _folder(path: Path, name: str) -> Path:
    """``path`` if it is a folder or absent (created later); a file there fails now, naming the variable."""
    if path.exists() and not path.is_dir():
        raise BenchError(
            f"{name} is {path}, which is a file, not a folder; point {name} at a folder "
            "(it is created if missing) or move the file"
        )
    return path


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return _folder(Path(value).expanduser(), name) if value else None


def cache_root() -> Path:
    """The project's cache: built datasets, downloaded checkpoints (unless set apart)."""
    return _env_path(CACHE_ENV) or _folder(Path.home() / ".cache" / "lipsim_bench", f"{CACHE_ENV} (default)")


def data_root() -> Path:
    """Downloaded datasets (``nights/`` for NIGHT)."""
    return _env_path(DATA_ENV) or cache_root()


def user_weights_dir() -> Path | None:
    """The folder the user named with ``--weights-dir`` (or the variable), or None."""
    return _env_path(WEIGHTS_ENV) or _env_path(LEGACY_WEIGHTS_ENV)


def weights_root() -> Path:
    """Where project-downloaded weights (LipSim checkpoints) go and are looked for."""
    return user_weights_dir() or cache_root() / "weights"


def set_user_weights_dir(path: Path) -> None:
    """``--weights-dir``: every loader (LipSim, open_clip, timm, DreamSim) looks there first."""
    os.environ[WEIGHTS_ENV] = str(Path(path).expanduser())


def results_root() -> Path:
    """Parent of default run folders (``results/<dataset>-<split>``)."""
    return _env_path(RESULTS_ENV) or Path("results")


def plugin_sources() -> list[str]:
    """Plugin files / modules named in ``LIPSIM_BENCH_PLUGINS``."""
    value = os.environ.get(PLUGINS_ENV, "")
    return [item for item in (part.strip() for part in value.split(os.pathsep)) if item]


#: The spellings an on/off environment switch accepts (case-insensitive); unset or empty is off.
SWITCH_ON = ("1", "true", "yes", "on")
SWITCH_OFF = ("0", "false", "no", "off")


def env_switch(name: str) -> bool:
    """An on/off variable (``LIPSIM_BENCH_VERIFY``, ...): any other spelling is one error naming it."""
    value = os.environ.get(name, "").strip()
    if value.lower() in SWITCH_ON:
        return True
    if value.lower() in SWITCH_OFF or not value:
        return False
    raise BenchError(
        f"{name}={value!r} is not an on/off value; set it to 1 or 0 (true/false, yes/no, on/off also work) or unset it"
    )


def env_number(name: str, default: float, unit: str) -> float:
    """A finite number >= 0 from a variable (``LIPSIM_BENCH_EMBED_CACHE_MB``), or ``default`` when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (number >= 0 and number != float("inf")):
        raise BenchError(f"{name}={value!r} is not a number of {unit} >= 0; set it to e.g. {default:g} or unset it")
    return number
