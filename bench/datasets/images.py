"""Reading dataset images into [0, 1] tensors, with errors that name the file and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from bench.errors import DatasetError


def load_image(path: Path, size: int | None) -> torch.Tensor:
    """RGB image as a float tensor ``(3, H, W)`` in [0, 1], resized to ``size`` x ``size`` bicubic.

    Bicubic resizing on the PIL image matches the preprocessing of DreamSim's NIGHT loader
    (torchvision's ``Resize((224, 224), BICUBIC)`` on PIL images calls PIL's resize).
    """
    return to_unit_float(load_image_uint8(path, size))


def to_unit_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 ``(3, H, W)`` -> float in [0, 1], the exact values :func:`load_image` gives."""
    return image.float().div_(255.0)


def load_image_uint8(path: Path, size: int | None) -> torch.Tensor:
    """The decoded, resized image as uint8 ``(3, H, W)``: 4x smaller to keep in memory than floats."""
    if not path.is_file():
        raise DatasetError(f"image missing: {path}; check the dataset root, or re-download the dataset")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BICUBIC)
            array = np.asarray(img, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"image unreadable: {path} ({exc}); the file is corrupt: re-download it") from None
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()
