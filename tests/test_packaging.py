"""The package installs and imports anywhere: one unique import name, a light default install, extras named.

A research folder commonly holds its own ``metrics.py``, ``attacks.py`` or ``bench.py``; the installed names
must never collide with them, and the default benchmark must run without any optional library.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from lipsim_bench.extras import EXTRA_OF, MissingExtraError, require

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
TRAP = "raise RuntimeError('the user module {name} was imported by lipsim_bench')\n"


def test_every_subpackage_is_declared_for_the_wheel() -> None:
    """A new folder with an ``__init__.py`` that pyproject's package list lacks would be missing from a wheel."""
    declared = set(CONFIG["tool"]["setuptools"]["packages"])
    found = set()
    for name, folder in CONFIG["tool"]["setuptools"]["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add(".".join((name, *init.parent.relative_to(ROOT / folder).parts)))
    assert found == declared, (
        f"add to pyproject's packages: {sorted(found - declared)}; remove: {sorted(declared - found)}"
    )


def test_the_default_install_holds_no_optional_library() -> None:
    required = [re.split(r"[<>=!~\[; ]", dep)[0].lower().replace("_", "-") for dep in CONFIG["project"]["dependencies"]]
    for module, extra in EXTRA_OF.items():
        assert not any(name.startswith(module.replace("_", "-")) for name in required), module
        assert extra in CONFIG["project"]["optional-dependencies"], f"{module}'s extra [{extra}] is not declared"


@pytest.mark.parametrize("module", sorted(EXTRA_OF))
def test_a_missing_optional_library_is_one_line_naming_its_extra(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an import sees when the library is not installed
    with pytest.raises(MissingExtraError) as caught:
        require(module, "this feature")
    message = str(caught.value)
    assert "\n" not in message and f"lipsim-bench[{EXTRA_OF[module]}]" in message and module in message


def _colliding_folder(tmp_path: Path) -> Path:
    """A research folder whose own metrics.py, attacks.py and bench.py fail loudly if anything imports them."""
    folder = tmp_path / "research"
    folder.mkdir()
    for name in ("metrics", "attacks", "bench"):
        (folder / f"{name}.py").write_text(TRAP.format(name=name))
    return folder


def _run(args: list[str], cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIPSIM_BENCH_RESULTS": str(cwd / "results")}
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _block_optional_libraries(tmp_path: Path) -> Path:
    """A path entry whose sitecustomize hides every optional library, as on a bare install: imports fail with
    ModuleNotFoundError and ``importlib.util.find_spec`` finds nothing."""
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "sitecustomize.py").write_text(f"import sys\nsys.modules.update(dict.fromkeys({sorted(EXTRA_OF)!r}))\n")
    return blocked


def readme_api_example() -> str:
    """The README's Python API example, as a user would paste it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    examples = [block for block in blocks if "lipsim_bench.evaluate(" in block]
    assert examples, "README.md shows no lipsim_bench.evaluate example"
    return examples[0]


def test_the_readme_api_example_runs_from_a_folder_with_its_own_metrics_attacks_and_bench(tmp_path: Path) -> None:
    folder = _colliding_folder(tmp_path)
    done = _run(["-c", readme_api_example()], folder)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "lipsim-tiny" in done.stdout


def test_the_cli_runs_bare_from_a_folder_with_its_own_modules(tmp_path: Path) -> None:
    """run_bench.py copied into the folder: its own directory (sys.path[0]) holds the colliding modules, and no
    optional library can be imported; the default protocol still runs (on a few triplets, to stay quick)."""
    folder = _colliding_folder(tmp_path)
    shutil.copy(ROOT / "run_bench.py", folder / "run_bench.py")
    done = _run(
        ["run_bench.py", "--n", "6", "--eps", "0.25", "--out", str(folder / "run")],
        folder,
        extra_path=_block_optional_libraries(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (folder / "run" / "scores.csv").is_file()


def test_the_collision_check_fails_when_a_user_module_is_imported(tmp_path: Path) -> None:
    """The trap itself works: importing the folder's metrics.py fails the run."""
    folder = _colliding_folder(tmp_path)
    done = _run(["-c", "import metrics"], folder)
    assert done.returncode != 0 and "the user module metrics was imported" in done.stderr


def test_a_missing_extra_reaches_the_cli_as_one_line(tmp_path: Path) -> None:
    done = _run(
        [
            str(ROOT / "run_bench.py"),
            "--metrics",
            "lpips",
            "--n",
            "4",
            "--evaluations",
            "natural",
            "--out",
            str(tmp_path / "run"),
        ],
        tmp_path,
        extra_path=_block_optional_libraries(tmp_path),
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "lipsim-bench[lpips]" in lines[0], done.stderr


def test_list_names_the_extra_a_metric_needs(tmp_path: Path) -> None:
    done = _run([str(ROOT / "run_bench.py"), "list"], tmp_path, extra_path=_block_optional_libraries(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "needs: pip install 'lipsim-bench[dreamsim]'" in done.stdout
