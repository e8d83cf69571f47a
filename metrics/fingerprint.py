"""Identities of weight files, for result keys: other weights must never reuse stored numbers."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from lipsim_bench.io import sha256_file


@lru_cache(maxsize=64)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def file_fingerprint(path: Path) -> str:
    """``sha256:<hex>`` of a weights file, hashed once per process while its size and mtime hold."""
    stat = Path(path).stat()
    return "sha256:" + _cached_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def cache_file_fingerprint(path: Path | None) -> str:
    """A cheap identity for large files in a hub cache: ``<revision folder>/<file>:<bytes>``.

    Hugging Face snapshots live under ``snapshots/<commit>/``, so the folder name pins the revision;
    hashing a 600 MB file on every run would cost seconds for no extra safety.
    """
    if path is None:
        return "missing"
    return f"{path.parent.name}/{path.name}:{path.stat().st_size}"


#: The package of the flat adapter modules (pixel.py, convsim.py): their siblings are other adapters, not
#: their parts, so only a deeper sub-package (lipsim_bench.metrics.lipsim) is hashed whole.
_ADAPTERS_PACKAGE = __name__.rpartition(".")[0]


def _source_files(factory: object) -> list[Path]:
    """The files whose code decides what ``factory`` builds.

    The factory's module; the modules of the classes it builds (its class, or its return
    annotation, and their bases outside torch); and, for an adapter in a sub-package such as
    ``lipsim_bench.metrics.lipsim``, every module of that sub-package (the network and layers it uses).
    """
    import inspect
    import sys
    import typing

    objects: list[object] = [factory]
    cls = factory if isinstance(factory, type) else None
    if cls is None:
        try:
            cls = typing.get_type_hints(factory).get("return")
        except Exception:
            cls = None
    if isinstance(cls, type):
        objects += [
            base for base in cls.__mro__ if not base.__module__.startswith(("torch", "builtins", "abc", "typing"))
        ]
    files: set[Path] = set()
    for obj in objects:
        try:
            files.add(Path(inspect.getsourcefile(obj)).resolve())  # type: ignore[arg-type]
        except (TypeError, OSError):
            continue
    module = sys.modules.get(getattr(factory, "__module__", ""), None)
    package = getattr(module, "__package__", "") or ""
    if "." in package and package != _ADAPTERS_PACKAGE and module is not None and getattr(module, "__file__", None):
        files.update(p.resolve() for p in Path(module.__file__).parent.glob("*.py"))
    return sorted(files)


def source_fingerprint(factory: object) -> str:
    """``src:<sha256 prefix>`` of the adapter's source files (part of every unit key)."""
    digest = hashlib.sha256()
    for path in _source_files(factory):
        digest.update(path.name.encode())
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
    return "src:" + digest.hexdigest()[:16]


#: Project modules that name, register or explain things but compute no number: editing a message must
#: not recompute every record.
NOT_COMPUTING = ("errors", "registry", "extras", "fingerprint", "formatting")


def _user_code(module: object) -> bool:
    """Whether a module is the project's or a plugin's code: ``lipsim_bench.*``, or a file outside the
    Python installation and its site-packages (a ``--plugin`` file, a user's helper module)."""
    name = getattr(module, "__name__", "") or ""
    if name.rsplit(".", 1)[-1] in NOT_COMPUTING:
        return False
    if name.startswith("lipsim_bench"):
        return True
    file = getattr(module, "__file__", None)
    if not file or name.split(".")[0] in ("torch", "numpy", "pandas", "scipy", "PIL"):
        return False
    resolved = str(Path(file).resolve())
    return not any(resolved.startswith(folder) for folder in _installed_folders())


@lru_cache(maxsize=1)
def _installed_folders() -> tuple[str, ...]:
    """The Python installation's library folders (stdlib and site-packages), resolved."""
    import sysconfig

    paths = sysconfig.get_paths()
    return tuple(str(Path(paths[k]).resolve()) + os.sep for k in ("stdlib", "platstdlib", "purelib", "platlib"))


def code_files(*classes: type) -> list[Path]:
    """The files whose code decides what instances of ``classes`` compute.

    The modules of each class and of its bases (the MRO, as for adapters), then, transitively, every
    project or plugin module those modules use (a module, function or class among their globals):
    an attack's ``perturb`` calls helpers in ``attacks.base``, an evaluation calls ``decided`` and
    ``radii``. Installed libraries (torch, numpy, ...) are keyed by version instead.
    """
    import inspect
    import sys

    todo = [sys.modules.get(base.__module__) for cls in classes for base in cls.__mro__]
    seen: set[str] = set()
    files: set[Path] = set()
    while todo:
        module = todo.pop()
        name = getattr(module, "__name__", None)
        if module is None or name in seen or not _user_code(module):
            continue
        seen.add(name)
        try:
            files.add(Path(inspect.getsourcefile(module)).resolve())  # type: ignore[arg-type]
        except (TypeError, OSError):
            pass
        for value in list(vars(module).values()):
            used = value if inspect.ismodule(value) else sys.modules.get(getattr(value, "__module__", None) or "")
            if (
                used is not None
                and getattr(used, "__name__", None) not in seen
                and (inspect.ismodule(value) or callable(value))
            ):
                todo.append(used)
    return sorted(files)


def code_fingerprint(*classes: type) -> str:
    """``src:<sha256 prefix>`` of :func:`code_files` (part of every unit key: an edited attack or
    evaluation, built-in or plugin, never reuses the numbers of its earlier code)."""
    digest = hashlib.sha256()
    for path in code_files(*classes):
        digest.update(path.name.encode())
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
    return "src:" + digest.hexdigest()[:16]
