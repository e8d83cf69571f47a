"""Step 1 of LipSim's training: distil a teacher's embeddings into a (Lipschitz) student.

Target of an image = ``target_scale * (u - mean(u))`` with ``u`` = the teacher's embedding of the
CLEAN image scaled to unit norm and ``mean`` its average over the whole training set (computed
once, up front). The teacher is frozen, so its targets are computed once and kept in memory (and in
``OUT/teacher_targets.safetensors``, so a resumed run skips that pass). Loss = RMSE between the student's
embedding of an augmented view and the target, over two views per image: (flip) and (flip +
colour jitter 0.4/0.4/0.2/0.1 with p=0.8 + grayscale p=0.2), both in one forward pass; with
``noise_sigma`` > 0 both views also get unclamped Gaussian noise (the targets stay those of the clean
image), so the student learns to embed a noisy image where the teacher puts the clean one.

Why ``target_scale`` (default 20): a 1-Lipschitz student's certified radii grow with the norm of
its embeddings, and unit-norm targets gave tiny radii; the scale is a hyperparameter to report.
The student's embedding dimension must equal the teacher's (build it with that output size).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from lipsim_bench.datasets import TwoAFCDataset, create_dataset
from lipsim_bench.devices import resolve_device
from lipsim_bench.errors import BenchError, DatasetError
from lipsim_bench.metrics.weightfiles import load_safetensors, save_safetensors
from lipsim_bench.training.augment import distill_views, gaussian_noise
from lipsim_bench.training.checkpoints import check_out_dir
from lipsim_bench.training.config import ModelArg, TrainConfig, TrainResult, TrainTask
from lipsim_bench.training.loop import build_module, require_embed, train, trainable_parameters
from lipsim_bench.training.projection import GaussianProjection

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DATASET_PREFIX = "dataset:"

ImagesArg = Union[str, Path, Sequence[Path], TwoAFCDataset]


@dataclass(kw_only=True)
class DistillConfig(TrainConfig):
    """Distillation options. The paper: 40 epochs, batch 512, Adam lr 0.01 betas (0.5, 0.9), 224 px.

    ``image_size``: side of the square the images are resized and centre-cropped to; None takes the
    student's ``input_size`` (or ``image_size``) attribute.
    """

    epochs: int = 40
    batch_size: int = 128
    target_scale: float = 20.0
    image_size: int | None = None
    #: Project the teacher's embeddings to this many numbers first (:mod:`.projection`; None: no projection).
    teacher_projection: int | None = None

    def validate(self) -> None:
        super().validate()
        if not (0 < self.target_scale < float("inf")):
            raise BenchError(f"--target-scale must be a positive finite number, got {self.target_scale}")
        if self.image_size is not None and self.image_size < 1:
            raise BenchError(f"--image-size must be positive, got {self.image_size}")
        if self.teacher_projection is not None and self.teacher_projection < 1:
            raise BenchError(f"--teacher-projection must be a positive size, got {self.teacher_projection}")


# ---------------------------------------------------------------- images


def find_images(folder: Path) -> list[Path]:
    """All .png/.jpg/.jpeg files under ``folder`` (recursive), sorted so the order never depends on the disk."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise BenchError(f"--images: folder not found: {folder}")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise BenchError(f"--images: no {'/'.join(IMAGE_SUFFIXES)} images under {folder}")
    return paths


def dataset_images(dataset: TwoAFCDataset) -> list[Path]:
    """Every ref/x0/x1 image of a 2AFC split once, in file order (NIGHT reuses references)."""
    dataset.check_files()
    return list(dict.fromkeys(p for r in dataset.records for p in (r.ref, r.x0, r.x1)))


def parse_images_spec(spec: str) -> list[Path]:
    """``FOLDER`` or ``dataset:NAME[:ROOT]:SPLIT`` (e.g. ``dataset:sample:train``, ``dataset:night:/data/nights:train``)."""
    if not spec.startswith(DATASET_PREFIX):
        return find_images(Path(spec))
    name_root, sep, split = spec[len(DATASET_PREFIX) :].rpartition(":")
    if not sep or not name_root or not split:
        raise BenchError(f"--images {spec!r}: write dataset:NAME[:ROOT]:SPLIT, e.g. dataset:sample:train")
    return dataset_images(create_dataset(name_root, split))


def resolve_image_paths(images: ImagesArg) -> list[Path]:
    """The training images from a folder, a ``dataset:...`` spec, a 2AFC dataset, or a list of paths."""
    if isinstance(images, TwoAFCDataset):
        return dataset_images(images)
    if isinstance(images, (str, Path)):
        return parse_images_spec(str(images))
    paths = [Path(p) for p in images]
    if not paths:
        raise BenchError("--images: the list of images is empty")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise BenchError(f"--images: image not found: {missing[0]} ({len(missing)} missing)")
    return paths


def load_center_crop(path: Path, size: int) -> Tensor:
    """RGB ``(3, size, size)`` in [0, 1]: shorter side resized to ``size`` (bicubic), centre crop."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            if (nw, nh) != (w, h):
                img = img.resize((nw, nh), Image.BICUBIC)
            left, top = (nw - size) // 2, (nh - size) // 2
            img = img.crop((left, top, left + size, top + size))
            array = np.asarray(img, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"image unreadable: {path} ({exc}); remove or replace the file") from None
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


class ImageListDataset(Dataset):
    """``(index, image)`` pairs; the index finds the image's cached teacher target."""

    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Tensor]:
        return index, load_center_crop(self.paths[index], self.size)


# ---------------------------------------------------------------- teacher targets


def resolve_teacher(teacher: nn.Module | str) -> nn.Module:
    """A module as is, or a registered metric name built with ``create_metric`` (frozen, eval mode)."""
    if isinstance(teacher, str):
        from lipsim_bench.metrics import MetricError, create_metric

        try:
            teacher = create_metric(teacher)
        except MetricError as exc:
            raise BenchError(f"--teacher: {exc}") from None
    require_embed(teacher, "teacher")
    return teacher


def teacher_key(teacher: nn.Module, paths: Sequence[Path], size: int) -> str:
    """Identifies a (teacher weights, image list, size) combination for the on-disk target cache."""
    digest = hashlib.sha256(f"{type(teacher).__qualname__}|{size}|".encode())
    with torch.no_grad():
        for name, tensor in teacher.state_dict().items():
            digest.update(f"{name}:{tuple(tensor.shape)}:{float(tensor.double().sum()):.10e}".encode())
    for p in paths:
        digest.update(str(Path(p).resolve()).encode() + b"\0")
    return digest.hexdigest()


@torch.no_grad()
def unit_teacher_embeddings(
    teacher: nn.Module,
    dataset: ImageListDataset,
    *,
    batch_size: int,
    device: torch.device,
    workers: int = 0,
    progress: bool = True,
    projection: GaussianProjection | None = None,
) -> Tensor:
    """Teacher embeddings of the clean images (projected when asked), flattened and scaled to unit norm,
    ``(N, k)`` on the CPU. The projection runs batch by batch: the full embeddings may not fit in memory."""
    teacher = teacher.to(device).eval()
    chunks = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    for _, images in tqdm(loader, desc="teacher embeddings", leave=False, disable=not progress):
        e = teacher.embed(images.to(device)).flatten(1).float()
        if projection is not None:
            e = projection(e)
        chunks.append(torch.nn.functional.normalize(e, dim=1).cpu())
    return torch.cat(chunks)


def make_targets(unit: Tensor, scale: float) -> Tensor:
    """``scale * (u - mean(u))``: centred on the training set's mean, at the documented scale."""
    return scale * (unit - unit.mean(dim=0, keepdim=True))


TARGETS_CACHE = "teacher_targets.safetensors"


def cached_unit_embeddings(
    teacher: nn.Module,
    dataset: ImageListDataset,
    config: DistillConfig,
    device: torch.device,
    key: str,
    projection: GaussianProjection | None = None,
) -> Tensor:
    """Teacher pass, or ``OUT/teacher_targets.safetensors`` when it was made with the same ``key`` (teacher, images, size).

    Safetensors with a content hash: a damaged cache is an error, never wrong targets or code.
    """
    cache = Path(config.out) / TARGETS_CACHE
    if cache.is_file():
        fix = "delete it (it is only a cache: the next run remakes it with one teacher pass)"
        saved, meta = load_safetensors(cache, fix)
        if meta.get("key") == key and "unit" in saved:
            return saved["unit"]
    unit = unit_teacher_embeddings(
        teacher,
        dataset,
        batch_size=config.eval_batch_size or config.batch_size,
        device=device,
        workers=config.workers,
        progress=config.progress,
        projection=projection,
    )
    save_safetensors({"unit": unit}, cache, {"key": key})
    return unit


# ---------------------------------------------------------------- the step


def student_image_size(student: nn.Module, config: DistillConfig) -> int:
    """``config.image_size``, else the student's ``input_size``/``image_size`` attribute."""
    size = config.image_size
    for attr in ("input_size", "image_size"):
        if size is None:
            size = getattr(student, attr, None)
    if isinstance(size, (tuple, list)):
        size = size[-1]
    if size is None:
        raise BenchError(
            f"cannot tell the input size of {type(student).__name__}; set --image-size (or an input_size attribute)"
        )
    return int(size)


@torch.no_grad()
def embedding_dim(model: nn.Module, image: Tensor, device: torch.device) -> int:
    """Output size of ``model.embed`` on one image, in eval mode (no BatchNorm statistics are touched)."""
    was_training = model.training
    model.eval()
    try:
        return int(model.embed(image.unsqueeze(0).to(device)).flatten(1).shape[1])
    finally:
        model.train(was_training)


def rmse(pred: Tensor, target: Tensor) -> Tensor:
    """Root of the mean squared error over all coordinates of the batch."""
    return torch.sqrt(torch.mean((pred - target) ** 2) + 1e-12)


class DistillStep:
    """Loss of one batch: both views through the student in one pass, RMSE to the cached targets."""

    def __init__(self, targets: Tensor, noise_sigma: float = 0.0) -> None:
        self.targets, self.noise_sigma = targets, noise_sigma

    def __call__(
        self, model: nn.Module, batch: Any, generator: torch.Generator, device: torch.device
    ) -> tuple[Tensor, int]:
        index, images = batch
        images = images.to(device, non_blocking=True)
        target = self.targets[index].to(device, non_blocking=True)
        views = gaussian_noise(torch.cat(distill_views(images, generator)), self.noise_sigma, generator)
        pred = model.embed(views).flatten(1)
        return rmse(pred, torch.cat((target, target))), images.shape[0]


def distill(
    student: ModelArg,
    teacher: nn.Module | str,
    images: ImagesArg,
    config: DistillConfig,
    *,
    eval_set: TwoAFCDataset | None = None,
    meta: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``student`` to reproduce ``teacher``'s centred, scaled embeddings of ``images``.

    ``student``: a trainable module with ``embed`` (a PerceptualMetric) or a factory of one.
    ``teacher``: a module with ``embed`` or a registered metric name. ``images``: a folder, a
    ``dataset:NAME[:ROOT]:SPLIT`` spec, a :class:`TwoAFCDataset` or a list of image paths.
    ``eval_set``: a 2AFC split scored after every epoch. ``meta`` goes into ``train_config.json``.
    """
    config.validate()
    check_out_dir(config)
    device = resolve_device(config.device)
    model = build_module(student, config.seed)
    require_embed(model, "student")
    trainable_parameters(model)
    teacher_model = resolve_teacher(teacher)
    paths = resolve_image_paths(images)
    dataset = ImageListDataset(paths, student_image_size(model, config))

    first = dataset[0][1]
    student_dim = embedding_dim(model.to(device), first, device)
    teacher_dim = embedding_dim(teacher_model.to(device), first, device)
    projection = None
    if config.teacher_projection is not None:
        projection = GaussianProjection(teacher_dim, config.teacher_projection, config.seed)
        teacher_dim = projection.out_dim
    if teacher_dim != student_dim:
        raise BenchError(
            f"dimension mismatch: the student embeds to {student_dim} numbers but the teacher to {teacher_dim}; "
            f"build the student with the teacher's embedding size, or pass --teacher-projection {student_dim}"
        )
    key = teacher_key(teacher_model, paths, dataset.size)
    if projection is not None:
        key = hashlib.sha256(f"{key}|projection {teacher_dim} seed {projection.seed}".encode()).hexdigest()
    unit = cached_unit_embeddings(teacher_model, dataset, config, device, key, projection)
    del teacher_model  # frozen targets are all we need from it; a teacher built here is freed
    if device.type == "cuda":
        torch.cuda.empty_cache()
    targets = make_targets(unit, config.target_scale)
    task = TrainTask(
        kind="distill",
        model=model,
        dataset=dataset,
        step_loss=DistillStep(targets, config.noise_sigma),
        config=config,
        identity={
            "student": type(model).__qualname__,
            "teacher": teacher if isinstance(teacher, str) else type(teacher).__qualname__,
            "n_images": len(paths),
            "image_size": dataset.size,
            "embedding_dim": student_dim,
            "teacher_and_images_sha256": key,
        },
        eval_set=eval_set,
        meta=dict(meta or {}),
    )
    return train(task)
