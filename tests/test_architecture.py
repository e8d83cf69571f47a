"""The layout stays layered: contracts in pyproject.toml (import-linter), small modules."""

from __future__ import annotations

from pathlib import Path

import pytest

importlinter_cli = pytest.importorskip("importlinter.cli")

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400


def _lint(config: Path) -> int:
    return importlinter_cli.lint_imports(config_filename=str(config), no_cache=True)


def test_layer_and_cycle_contracts_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert _lint(ROOT / "pyproject.toml") == 0


def test_the_contract_check_fails_on_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same checker, told that metrics sit above the CLI, must see the CLI's import of metrics."""
    monkeypatch.chdir(ROOT)
    broken = tmp_path / "broken.toml"
    broken.write_text(
        '[tool.importlinter]\nroot_packages = ["bench", "metrics", "attacks"]\n\n'
        '[[tool.importlinter.contracts]]\nname = "reversed"\ntype = "layers"\nlayers = ["metrics", "bench.cli"]\n'
    )
    assert _lint(broken) != 0


def test_no_module_is_over_400_lines() -> None:
    long = []
    for package in ("bench", "metrics", "attacks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not long, "split these modules: " + "; ".join(long)
