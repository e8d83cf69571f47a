"""Distillation and fine-tuning on toy models and miniature data: learning, resume, seeding, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from lipsim_bench.datasets import TripletRecord, TwoAFCDataset
from lipsim_bench.errors import BenchError
from lipsim_bench.metrics.base import PerceptualMetric
from lipsim_bench.metrics.registry import register_metric, unregister_metric
from lipsim_bench.training import DistillConfig, FinetuneConfig, distill, evaluate_2afc, finetune, hinge_loss
from lipsim_bench.training import cli as train_cli
from lipsim_bench.training.augment import distill_views, triplet_flip
from lipsim_bench.training.checkpoints import load_state_dict_file
from lipsim_bench.training.distill import ImageListDataset, find_images, make_targets, rmse
from lipsim_bench.training.finetune import decided_triplets
from lipsim_bench.training.loop import WarmupDecay
from tests.conftest import make_night_tree

SIZE = 16
DIM = 16


class ToyStudent(PerceptualMetric):
    """A small conv net: 16x16 input -> 16 numbers."""

    input_size = SIZE

    def __init__(self, dim: int = DIM) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8 * 8 * 8, dim)
        )

    def embed(self, x: Tensor) -> Tensor:
        if x.shape[-1] != SIZE:
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
        return self.net(x)


class ToyTeacher(PerceptualMetric):
    """A fixed random projection of the (16x16) pixels, made flip-invariant (as the student's views are flipped)."""

    def __init__(self, dim: int = DIM) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(123)
        self.register_buffer("proj", torch.randn(3 * SIZE * SIZE, dim, generator=gen))

    def embed(self, x: Tensor) -> Tensor:
        if x.shape[-1] != SIZE:
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
        return (0.5 * (x + x.flip(-1))).flatten(1) @ self.proj


def smooth_image(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Low-frequency colour pattern: 4x4 random colours upsampled, plus a bright rectangle."""
    low = rng.random((4, 4, 3))
    img = np.kron(low, np.ones((size // 4, size // 4, 1)))
    y, x = rng.integers(0, size // 2, 2)
    img[y : y + size // 3, x : x + size // 3] = rng.random(3)
    return img


def save(img: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 structured PNGs in nested folders; a few are not square (resize + centre crop)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(16):
        img = smooth_image(rng, 24 if i % 4 == 0 else SIZE)
        if i % 4 == 0:
            img = img[:, :20]
        save(img, root / f"part{i % 2}" / f"{i:02d}.png")
    (root / "notes.txt").write_text("not an image")
    return root


def toy_2afc(root: Path, n: int, *, seed: int, n_ties: int = 0, split: str = "train") -> TwoAFCDataset:
    """Triplets a metric must learn: the closer image is the reference at lower contrast and shifted
    brightness (far in pixels, same structure), the other has 3 of its 16 blocks recoloured.

    A random toy student scores about 58% on such a split, pixel-l2 50%; the last ``n_ties`` have p = 0.5.
    """
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n + n_ties):
        ref = smooth_image(rng)
        close = ref * rng.uniform(0.5, 0.7) + rng.uniform(0.2, 0.4)
        far = ref.copy()
        for block in rng.choice(16, 3, replace=False):
            y, x = divmod(int(block), 4)
            far[y * 4 : (y + 1) * 4, x * 4 : (x + 1) * 4] = rng.random(3)
        p = 0.5 if i >= n else float(i % 2)
        x0, x1 = (far, close) if p >= 0.5 else (close, far)
        paths = [save(im, root / f"{i:03d}_{k}.png") for k, im in (("r", ref), ("0", x0), ("1", x1))]
        records.append(TripletRecord(str(i), *paths, p=p, group=split))
    return TwoAFCDataset("toy", split, records, None)


def quiet(cls, out: Path, **kw):
    return cls(out=out, progress=False, quiet=True, **kw)


def distill_config(out: Path, **kw) -> DistillConfig:
    base = dict(epochs=4, batch_size=8, lr=1e-2, warmup=0.1, target_scale=5.0, seed=0)
    return quiet(DistillConfig, out, **{**base, **kw})


def final_state(out: Path) -> dict[str, Tensor]:
    """A run's final weights, whichever file the loop wrote (``final.safetensors``, older ``final.pt``)."""
    return load_state_dict_file(final_file(out))


def final_file(out: Path) -> Path:
    return next((out / n for n in ("final.safetensors", "final.pt") if (out / n).exists()), out / "final.safetensors")


def state_equal(a: dict[str, Tensor], b: dict[str, Tensor], tol: float = 1e-6) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=tol, rtol=0) for k in a)


# ---------------------------------------------------------------- pieces


def test_augmentations_are_seeded_and_keep_triplets_aligned() -> None:
    x = torch.rand(8, 3, SIZE, SIZE)
    a = distill_views(x, torch.Generator().manual_seed(1))
    b = distill_views(x, torch.Generator().manual_seed(1))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert a[1].min() >= 0 and a[1].max() <= 1 and not torch.equal(a[0], a[1])
    ref, x0, x1 = triplet_flip(x, x + 1, x + 2, torch.Generator().manual_seed(2), rot90=True)
    assert torch.allclose(x0 - ref, torch.ones_like(x)) and torch.allclose(x1 - ref, 2 * torch.ones_like(x))
    assert not torch.equal(ref, x)


def test_schedule_warms_up_then_decays() -> None:
    f = WarmupDecay(total_steps=10, warmup_steps=2)
    values = [f(s) for s in range(10)]
    assert values[0] == 0.5 and values[1] == 1.0 and values[2] == 1.0
    assert values[-1] == pytest.approx(0.0, abs=1e-12) and values == values[:2] + sorted(values[2:], reverse=True)


def test_targets_are_centred_and_scaled() -> None:
    unit = F.normalize(torch.randn(10, 4) + 3, dim=1)
    t = make_targets(unit, 20.0)
    assert torch.allclose(t.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(t, 20 * (unit - unit.mean(0)))


def test_hinge_sign_and_ties(tmp_path: Path) -> None:
    d0, d1 = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])
    # x1 much closer: no loss when people agree (p=1), 1.5 when they chose x0 (p=0)
    assert hinge_loss(d0, d1, torch.tensor([1.0, 1.0]), 0.5) == 0
    assert hinge_loss(d0, d1, torch.tensor([0.0, 0.0]), 0.5) == pytest.approx(1.5)
    data = toy_2afc(tmp_path, 4, seed=0, n_ties=2)
    kept, dropped = decided_triplets(data)
    assert (len(kept), dropped) == (4, 2) and all(r.p != 0.5 for r in kept.records)


# ---------------------------------------------------------------- distillation


def test_distill_learns_and_writes_outputs(tmp_path: Path, image_folder: Path) -> None:
    out = tmp_path / "run"
    torch.manual_seed(0)
    student, teacher = ToyStudent(), ToyTeacher()
    dataset = ImageListDataset(find_images(image_folder), SIZE)
    clean = torch.stack([dataset[i][1] for i in range(len(dataset))])
    targets = make_targets(F.normalize(teacher.embed(clean), dim=1), 5.0)
    with torch.no_grad():
        before = rmse(student.embed(clean), targets)
    result = distill(student, teacher, image_folder, distill_config(out, epochs=8))
    with torch.no_grad():
        after = rmse(student.eval().embed(clean), targets)
    losses = [row["loss"] for row in result.history]
    assert result.finished and len(losses) == 8
    assert losses[-1] < 0.75 * losses[0], losses
    assert after < 0.6 * before, (before, after)
    state = final_state(out)
    assert state.keys() == ToyStudent().state_dict().keys()
    with open(out / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["kind"] == "distill" and saved["config"]["seed"] == 0 and saved["identity"]["n_images"] == 16
    assert saved["provenance"]["packages"]["torch"] and saved["wall_s_this_invocation"] > 0


def test_distill_on_2afc_images_with_eval(tmp_path: Path) -> None:
    train = toy_2afc(tmp_path / "train", 6, seed=1)
    test = toy_2afc(tmp_path / "test", 6, seed=2, split="test")
    result = distill(ToyStudent, ToyTeacher(), train, distill_config(tmp_path / "run", epochs=1), eval_set=test)
    assert result.history[0]["eval_2afc"] is not None and 0 <= result.history[0]["eval_2afc"] <= 100
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["identity"]["n_images"] == 18


def test_distill_resume_equals_uninterrupted(tmp_path: Path, image_folder: Path) -> None:
    whole = distill(ToyStudent, ToyTeacher(), image_folder, distill_config(tmp_path / "a", epochs=3))
    part = distill(
        ToyStudent, ToyTeacher(), image_folder, distill_config(tmp_path / "b", epochs=3, stop_after_epochs=1)
    )
    assert not part.finished and part.final_path is None and not final_file(tmp_path / "b").exists()
    resumed = distill(ToyStudent, ToyTeacher(), image_folder, distill_config(tmp_path / "b", epochs=3, resume=True))
    assert resumed.finished and len(resumed.history) == 3
    a = final_state(tmp_path / "a")
    b = final_state(tmp_path / "b")
    assert state_equal(a, b)
    assert [r["loss"] for r in whole.history] == pytest.approx([r["loss"] for r in resumed.history], abs=1e-7)


def test_seed_makes_runs_identical(tmp_path: Path, image_folder: Path) -> None:
    def run(name: str, seed: int) -> dict[str, Tensor]:
        distill(ToyStudent, ToyTeacher(), image_folder, distill_config(tmp_path / name, epochs=1, seed=seed))
        return final_state(tmp_path / name)

    first, again, other = run("s0", 0), run("s0b", 0), run("s1", 1)
    assert state_equal(first, again, tol=0.0)
    assert not state_equal(first, other)


def test_max_steps_caps_training(tmp_path: Path, image_folder: Path) -> None:
    result = distill(ToyStudent, ToyTeacher(), image_folder, distill_config(tmp_path / "r", epochs=5, max_steps=3))
    assert result.finished and result.steps == 3 and len(result.history) == 2


# ---------------------------------------------------------------- fine-tuning


def test_finetune_hinge_loss_falls_and_resumes(tmp_path: Path) -> None:
    data = toy_2afc(tmp_path / "d", 24, seed=3, n_ties=3)
    held_out = toy_2afc(tmp_path / "t", 24, seed=4, split="test")
    cfg = dict(epochs=5, batch_size=8, lr=1e-2, warmup=0.1, margin=0.5, rot90=True)
    torch.manual_seed(0)
    student = ToyStudent()
    before = evaluate_2afc(student, held_out)
    result = finetune(student, data, quiet(FinetuneConfig, tmp_path / "a", **cfg), eval_set=held_out)
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert result.history[-1]["eval_2afc"] > max(85.0, before + 20), (before, result.history)
    saved = json.loads((tmp_path / "a" / "train_config.json").read_text())
    assert saved["identity"]["n_triplets"] == 24 and saved["identity"]["n_dropped_p_half"] == 3

    torch.manual_seed(0)
    finetune(ToyStudent(), data, quiet(FinetuneConfig, tmp_path / "b", **cfg, stop_after_epochs=2))
    finetune(ToyStudent(), data, quiet(FinetuneConfig, tmp_path / "b", **cfg, resume=True))
    a = final_state(tmp_path / "a")
    b = final_state(tmp_path / "b")
    assert state_equal(a, b)


# ---------------------------------------------------------------- bad input


def test_bad_inputs_say_what_is_wrong(tmp_path: Path, image_folder: Path) -> None:
    def fails(match: str, *args, **kw) -> None:
        with pytest.raises(BenchError, match=match) as info:
            distill(*args, **kw)
        assert "\n" not in str(info.value)

    cfg = distill_config(tmp_path / "r", epochs=1)
    fails("folder not found", ToyStudent(), ToyTeacher(), tmp_path / "nope", cfg)
    (tmp_path / "empty").mkdir()
    fails("no .png/.jpg/.jpeg images", ToyStudent(), ToyTeacher(), tmp_path / "empty", cfg)
    fails("--teacher: unknown metric 'no-such-metric'", ToyStudent(), "no-such-metric", image_folder, cfg)
    fails(
        "dimension mismatch: the student embeds to 8 .* teacher to 16",
        ToyStudent(dim=8),
        ToyTeacher(),
        image_folder,
        cfg,
    )
    fails("dataset:NAME\\[:ROOT\\]:SPLIT", ToyStudent(), ToyTeacher(), "dataset:sample", cfg)
    fails("--lr must be a positive", ToyStudent(), ToyTeacher(), image_folder, distill_config(tmp_path / "r", lr=-1.0))

    distill(ToyStudent(), ToyTeacher(), image_folder, distill_config(tmp_path / "done", epochs=1))
    fails(
        "already holds a training run .*--resume",
        ToyStudent(),
        ToyTeacher(),
        image_folder,
        distill_config(tmp_path / "done", epochs=1),
    )
    fails(
        "--resume: .* other settings .*lr: was 0.01, now 0.001",
        ToyStudent(),
        ToyTeacher(),
        image_folder,
        distill_config(tmp_path / "done", epochs=1, lr=1e-3, resume=True),
    )


# ---------------------------------------------------------------- command line


@pytest.fixture
def toy_registry(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(train_cli.STUDENTS, "toy", ToyStudent)
    register_metric("toy-teacher", description="test teacher")(ToyTeacher)
    yield
    unregister_metric("toy-teacher")


def test_cli_distill_then_finetune(
    tmp_path: Path, image_folder: Path, toy_registry, capsys: pytest.CaptureFixture
) -> None:
    night = make_night_tree(
        tmp_path / "night", [{"split": "train", "p": float(i % 2)} for i in range(6)] + [{"split": "test"}] * 2
    )
    common = ["--batch-size", "8", "--no-progress", "--seed", "0"]
    assert (
        train_cli.cmd_train(
            [
                "distill",
                "--student",
                "toy",
                "--teacher",
                "toy-teacher",
                "--images",
                str(image_folder),
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "d"),
                *common,
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "d" / "train_config.json").read_text())["model"] == "toy"
    assert (
        train_cli.cmd_train(
            [
                "finetune",
                "--metric",
                str(final_file(tmp_path / "d")),
                "--dataset",
                f"night:{night}",
                "--split",
                "train",
                "--eval-dataset",
                f"night:{night}",
                "--eval-split",
                "test",
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "f"),
                *common,
            ]
        )
        == 0
    )
    with open(tmp_path / "f" / "log.csv", newline="") as handle:
        assert float(next(csv.DictReader(handle))["eval_2afc"]) >= 0
    assert "wrote" in capsys.readouterr().out
    # a training run's checkpoint as the teacher (its folder's train_config.json names the architecture)
    assert (
        train_cli.cmd_train(
            [
                "distill",
                "--student",
                "toy",
                "--teacher",
                str(final_file(tmp_path / "d")),
                "--images",
                f"dataset:night:{night}:train",
                "--max-steps",
                "1",
                "--out",
                str(tmp_path / "d2"),
                *common,
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "d2" / "train_config.json").read_text())["identity"]["n_images"] == 18

    with pytest.raises(
        BenchError, match=r"--student 'nope' is neither a student preset \(known: [^)]*\btoy\b"
    ):  # other files may register presets
        train_cli.cmd_train(
            [
                "distill",
                "--student",
                "nope",
                "--teacher",
                "toy-teacher",
                "--images",
                str(image_folder),
                "--out",
                str(tmp_path / "x"),
                *common,
            ]
        )
    with pytest.raises(BenchError, match="checkpoint not found"):
        train_cli.cmd_train(
            ["finetune", "--metric", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x"), *common]
        )
    with pytest.raises(BenchError, match="does not fit ToyStudent"):
        torch.save({"w": torch.zeros(1)}, tmp_path / "bad.pt")
        train_cli.cmd_train(
            ["finetune", "--metric", "toy", "--init", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "x"), *common]
        )
