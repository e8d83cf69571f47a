"""One family of locations: --weights-dir reaches the LipSim checkpoints as well as the hub caches."""

from __future__ import annotations

from pathlib import Path

import pytest

from lipsim_bench import locations


def test_defaults_follow_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (locations.DATA_ENV, locations.WEIGHTS_ENV, locations.LEGACY_WEIGHTS_ENV, locations.RESULTS_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(locations.CACHE_ENV, str(tmp_path / "cache"))
    assert locations.data_root() == tmp_path / "cache"
    assert locations.weights_root() == tmp_path / "cache" / "weights"
    from lipsim_bench.datasets.night import default_night_root

    assert default_night_root() == tmp_path / "cache" / "nights"


def test_weights_dir_reaches_lipsim_checkpoints(capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(locations.WEIGHTS_ENV, "")  # --weights-dir sets it for the process: undone after the test
    from lipsim_bench.cli import main
    from lipsim_bench.metrics.lipsim.checkpoint import checkpoint_path

    folder = tmp_path / "weights"
    folder.mkdir()
    assert (
        main(
            [
                "--weights-dir",
                str(folder),
                "--metrics",
                "lipsim-margin0.5",
                "--n",
                "1",
                "--dry-run",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert checkpoint_path("margin0.5") == folder / "lipsim_margin0.5.pth"
    assert "run_bench.py fetch lipsim-margin0.5" in out  # the fetch hint names the project's command
