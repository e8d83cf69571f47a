"""``--plugin FILE.py`` / ``--import MODULE`` (and ``$LIPSIM_BENCH_PLUGINS``): a one-file metric,
attack or evaluation reaches the command line without being installed.

Importing the file runs its ``@register_metric`` / ``@register_attack`` / ``@register_evaluation``
decorators. A plugin's code is part of its identity: unit keys hold a hash of a metric adapter's
source (``MetricSpec.source_id``), so editing the file never reuses old records.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from lipsim_bench.errors import BenchError
from lipsim_bench.locations import PLUGINS_ENV, plugin_sources

_LOADED: dict[str, ModuleType] = {}
_CONTENT: dict[str, str] = {}  # resolved path -> sha256 of the file as loaded


def load_plugin_file(path: str | Path) -> ModuleType:
    """Import a Python file as a module (once per resolved path)."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise BenchError(
            f"--plugin {path}: is a folder; give the path of one .py file in it (repeat --plugin for several)"
        )
    if not file.is_file():
        raise BenchError(
            f"--plugin {path}: no such file; give the path of a .py file that registers metrics, attacks or evaluations"
        )
    if file.suffix != ".py":
        raise BenchError(f"--plugin {path}: not a .py file")
    key = str(file.resolve())
    content = hashlib.sha256(file.read_bytes()).hexdigest()
    if key in _LOADED:
        if _CONTENT.get(key) != content:  # the old classes would run while the keys hash the new source
            raise BenchError(
                f"--plugin {path} changed since this Python session loaded it; restart the session "
                "(or the notebook's kernel) so that its new code runs"
            )
        return _LOADED[key]
    name = f"lipsim_bench_plugin_{file.stem}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise BenchError(f"--plugin {path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and inspect look modules up by name
    try:
        spec.loader.exec_module(module)
    except BenchError:
        raise
    except (Exception, SystemExit) as exc:  # a plugin that exits at import must not end the run silently
        sys.modules.pop(name, None)
        raise BenchError(f"--plugin {path} failed to import ({type(exc).__name__}: {exc}); fix the file") from None
    _LOADED[key] = module
    _CONTENT[key] = content
    return module


def import_plugin_module(name: str) -> ModuleType:
    """Import an installed or importable module by name."""
    try:
        return importlib.import_module(name)
    except BenchError:
        raise
    except (Exception, SystemExit) as exc:
        raise BenchError(
            f"--import {name} failed ({type(exc).__name__}: {exc}); check the module name and that it is importable"
        ) from None


def load_plugins(files: list[str] | None = None, modules: list[str] | None = None) -> list[ModuleType]:
    """The given files and modules, then those named in ``$LIPSIM_BENCH_PLUGINS`` (``.py`` = a file)."""
    loaded = [load_plugin_file(f) for f in files or []]
    loaded += [import_plugin_module(m) for m in modules or []]
    for item in plugin_sources():
        try:
            loaded.append(load_plugin_file(item) if item.endswith(".py") else import_plugin_module(item))
        except BenchError as exc:
            raise BenchError(f"{PLUGINS_ENV}: {exc}") from None
    return loaded
