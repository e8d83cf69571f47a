"""The layout stays layered: contracts in pyproject.toml (import-linter), small modules.

The import package ``lipsim_bench`` maps three top-level folders (``bench/``, ``metrics/``, ``attacks/``,
see ``[tool.setuptools] package-dir``). import-linter reads a package from one folder on disk, so the check
runs on a staged copy laid out as the wheel installs it, in a fresh interpreter.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

pytest.importorskip("importlinter.cli")

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400


def package_dirs() -> dict[str, str]:
    """The import name -> folder mapping, as pyproject.toml declares it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["setuptools"]["package-dir"]


def stage_installed_layout(target: Path) -> Path:
    """Copy the sources into ``target`` nested as the wheel installs them (lipsim_bench/metrics/...)."""
    for name, folder in sorted(package_dirs().items(), key=lambda item: item[0].count(".")):
        destination = target.joinpath(*name.split("."))
        for source in (ROOT / folder).rglob("*.py"):
            out = destination / source.relative_to(ROOT / folder)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out)
    return target


def _lint(config: Path, staged: Path) -> int:
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(config)],
        cwd=staged,
        env={"PYTHONPATH": str(staged), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    print(done.stdout[-3000:], done.stderr[-3000:])
    return done.returncode


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stage_installed_layout(tmp_path_factory.mktemp("staged"))


def test_layer_and_cycle_contracts_hold(staged: Path) -> None:
    assert _lint(ROOT / "pyproject.toml", staged) == 0


def test_the_contract_check_fails_on_an_upward_import(tmp_path: Path, staged: Path) -> None:
    """The same checker, told that metrics sit above the CLI, must see the CLI's import of metrics."""
    broken = tmp_path / "broken.toml"
    broken.write_text(
        '[tool.importlinter]\nroot_packages = ["lipsim_bench"]\n\n'
        '[[tool.importlinter.contracts]]\nname = "reversed"\ntype = "layers"\n'
        'layers = ["lipsim_bench.metrics", "lipsim_bench.cli"]\n'
    )
    assert _lint(broken, staged) != 0


def test_no_module_is_over_400_lines() -> None:
    long = []
    for folder in package_dirs().values():
        for path in sorted((ROOT / folder).rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not long, "split these modules: " + "; ".join(long)
