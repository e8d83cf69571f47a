"""Reading dataset images into [0, 1] tensors, with errors that name the file and the fix."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from lipsim_bench.datasets.decode import UnsupportedImage, to_rgb_array
from lipsim_bench.errors import DatasetError


def load_image(path: Path, size: int | None) -> torch.Tensor:
    """RGB image as a float tensor ``(3, H, W)`` in [0, 1], resized to ``size`` x ``size`` bicubic.

    Bicubic resizing on the PIL image matches the preprocessing of DreamSim's NIGHT loader
    (torchvision's ``Resize((224, 224), BICUBIC)`` on PIL images calls PIL's resize).
    """
    return to_unit_float(load_image_uint8(path, size))


def to_unit_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 ``(3, H, W)`` -> float in [0, 1], the exact values :func:`load_image` gives."""
    return image.float().div_(255.0)


def _one_line(exc: BaseException) -> str:
    """An exception's text on one line: the CLI prints a DatasetError as exactly one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _decoded(path: Path, size: int | None) -> np.ndarray:
    """Decode under Pillow's pixel limit: a decompression bomb (warning or error) is refused, not half-read."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            array = to_rgb_array(img)
    if size is not None and array.shape[:2] != (size, size):
        array = np.asarray(Image.fromarray(array, "RGB").resize((size, size), Image.BICUBIC), dtype=np.uint8)
    return np.ascontiguousarray(array)


def load_image_uint8(path: Path, size: int | None) -> torch.Tensor:
    """The decoded, resized image as uint8 ``(3, H, W)``: 4x smaller to keep in memory than floats."""
    if not path.is_file():
        raise DatasetError(f"image missing: {path}; check the dataset root, or re-download the dataset")
    try:
        array = _decoded(path, size)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetError(
            f"image too large: {path} ({_one_line(exc)}); a dataset image this big is a decompression bomb or a wrong file: "
            "replace it with the dataset's own image"
        ) from None
    except UnsupportedImage as exc:
        raise DatasetError(f"image unsupported: {path} ({_one_line(exc)})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"image unreadable: {path} ({_one_line(exc)}); the file is corrupt: re-download it"
        ) from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
