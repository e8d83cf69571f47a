"""Training's weight files: a damaged, foreign or crafted checkpoint given to ``train`` (``--metric``,
``--init``, ``--teacher``, ``--resume``) or found as the distillation cache is one clear line, never a
silent change of the weights and never code run; final weights are safetensors (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lipsim_bench.errors import BenchError
from lipsim_bench.training import cli as train_cli
from lipsim_bench.training import distill
from tests.bench.training.test_training import ToyStudent, ToyTeacher, distill_config, image_folder, state_equal  # noqa: F401
from tests.metrics.weightfile_cases import BREAKERS, assert_one_clean_line, evil_checkpoint, flip_tensor_byte


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(train_cli.STUDENTS, "toy", ToyStudent)


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    """A training run's folder: the toy student's weights as a torch file, and the config naming it."""
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    torch.save(ToyStudent().state_dict(), run / "final.pt")
    (run / "train_config.json").write_text(json.dumps({"model": "toy"}))
    return run / "final.pt"


def _refused(call, path: Path) -> str:
    with pytest.raises(BenchError) as info:
        call()
    assert_one_clean_line(str(info.value), path)
    return str(info.value)


@pytest.mark.parametrize("damage", sorted(BREAKERS))
def test_damaged_metric_checkpoint_is_one_line(damage: str, run_file: Path, toy) -> None:
    bad = BREAKERS[damage](run_file, run_file.with_name("bad.pt"))
    _refused(lambda: train_cli.build_model(str(bad), option="--metric"), bad)


@pytest.mark.parametrize("damage", sorted(BREAKERS))
def test_damaged_init_checkpoint_is_one_line(damage: str, run_file: Path, toy) -> None:
    bad = BREAKERS[damage](run_file, run_file.with_name("bad.pt"))
    _refused(lambda: train_cli.build_model("toy", init=str(bad)), bad)


def test_crafted_init_checkpoint_runs_nothing(tmp_path: Path, toy) -> None:
    marker = tmp_path / "ran"
    path = evil_checkpoint(tmp_path / "evil.pt", marker)
    assert "refused, nothing was run" in _refused(lambda: train_cli.build_model("toy", init=str(path)), path)
    assert not marker.exists()


def test_intact_checkpoint_still_loads(run_file: Path, toy) -> None:
    model, arch = train_cli.build_model(str(run_file), option="--metric")
    assert arch == "toy" and state_equal(model.state_dict(), torch.load(run_file, weights_only=True), tol=0.0)


# ---------------------------------------------------------------- final weights (safetensors)


def test_final_weights_are_safetensors_and_self_checking(tmp_path: Path, toy) -> None:
    from lipsim_bench.training.checkpoints import save_final_weights

    torch.manual_seed(0)
    model = ToyStudent()
    path = save_final_weights(model, tmp_path)
    assert path.name == "final.safetensors" and path.read_bytes()[8:9] == b"{"  # a JSON header, no pickle
    (tmp_path / "train_config.json").write_text(json.dumps({"model": "toy"}))
    loaded, _ = train_cli.build_model(str(path), option="--metric")
    assert state_equal(loaded.state_dict(), model.state_dict(), tol=0.0)
    for damage, breaker in BREAKERS.items():
        bad = breaker(path, tmp_path / f"{damage}.safetensors")
        message = _refused(lambda: train_cli.build_model("toy", init=str(bad)), bad)
        if damage == "flipped":
            assert "content hash" in message


def test_training_writes_safetensors(tmp_path: Path, image_folder: Path) -> None:  # noqa: F811
    distill(ToyStudent(), ToyTeacher(), image_folder, distill_config(tmp_path / "r", epochs=1))
    assert (tmp_path / "r" / "final.safetensors").is_file() and not (tmp_path / "r" / "final.pt").exists()


# ---------------------------------------------------------------- resume and the distillation cache


def _interrupted(tmp_path: Path, image_folder: Path) -> Path:  # noqa: F811
    out = tmp_path / "r"
    distill(ToyStudent(), ToyTeacher(), image_folder, distill_config(out, epochs=2, stop_after_epochs=1))
    return out


def _resume(out: Path, image_folder: Path) -> None:  # noqa: F811
    distill(ToyStudent(), ToyTeacher(), image_folder, distill_config(out, epochs=2, resume=True))


def test_crafted_last_checkpoint_runs_nothing(tmp_path: Path, image_folder: Path) -> None:  # noqa: F811
    out = _interrupted(tmp_path, image_folder)
    marker = tmp_path / "ran"
    evil_checkpoint(out / "last.pt", marker)
    _refused(lambda: _resume(out, image_folder), out / "last.pt")
    assert not marker.exists()


def test_load_resume_checkpoint_refuses_damage(tmp_path: Path, image_folder: Path) -> None:  # noqa: F811
    from lipsim_bench.training.checkpoints import load_resume_checkpoint

    out = _interrupted(tmp_path, image_folder)
    assert load_resume_checkpoint(out / "last.pt")["step"] > 0
    for damage, breaker in BREAKERS.items():
        bad = breaker(out / "last.pt", tmp_path / f"{damage}.pt")
        assert "--resume" in _refused(lambda: load_resume_checkpoint(bad), bad)


def test_flipped_last_checkpoint_is_refused_on_resume(tmp_path: Path, image_folder: Path) -> None:  # noqa: F811
    out = _interrupted(tmp_path, image_folder)
    flip_tensor_byte(out / "last.pt", out / "last.pt")
    _refused(lambda: _resume(out, image_folder), out / "last.pt")


def _cache(out: Path) -> Path:
    return next(out.glob("teacher_targets.*"))


@pytest.mark.parametrize("damage", sorted(BREAKERS))
def test_damaged_distillation_cache_is_one_line(damage: str, tmp_path: Path, image_folder: Path) -> None:  # noqa: F811
    out = _interrupted(tmp_path, image_folder)
    cache = _cache(out)
    BREAKERS[damage](cache, tmp_path / "copy")
    (tmp_path / "copy").replace(cache)
    message = _refused(lambda: _resume(out, image_folder), cache)
    assert "delete it" in message


def test_crafted_distillation_cache_runs_nothing(tmp_path: Path, image_folder: Path) -> None:  # noqa: F811
    out = _interrupted(tmp_path, image_folder)
    marker = tmp_path / "ran"
    evil_checkpoint(_cache(out), marker)
    _refused(lambda: _resume(out, image_folder), _cache(out))
    assert not marker.exists()


def test_intact_distillation_cache_is_reused(
    tmp_path: Path,
    image_folder: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    D = importlib.import_module("lipsim_bench.training.distill")  # the package re-exports a function of that name
    out = _interrupted(tmp_path, image_folder)
    assert _cache(out).suffix == ".safetensors"
    monkeypatch.setattr(D, "unit_teacher_embeddings", lambda *a, **k: pytest.fail("the teacher pass ran again"))
    _resume(out, image_folder)
