"""Shared inputs and measures for the end-to-end tests against the official packages (``test_official_*.py``).

Each side gets the same photographs in its own input convention: our adapters the [0, 1] float tensor
(:func:`unit`), the official pipelines the uint8 pixels (a PIL image for the PIL-based transforms, or
the array for ``lpips.im2tensor``). The photos are scikit-image's bundled ones (offline, no download);
real images rather than noise so that a resize behaves as on a dataset (few pixels overshoot).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SHIFT = 4  # pixels: the "similar" pairs are two crops of one photo this far apart

#: What a caller gets wrong about an adapter's input range: [0, 255] pixels, or LPIPS's [-1, 1].
WRONG_RANGES: dict[str, Callable[[Tensor], Tensor]] = {
    "0..255": lambda x: x * 255,
    "-1..1": lambda x: 2 * x - 1,
}


def _square_photo(name: str, size: int) -> np.ndarray:
    import skimage.data

    img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    side = min(img.size)
    left, top = (img.size[0] - side) // 2, (img.size[1] - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size + SHIFT, size + SHIFT), Image.Resampling.BOX)
    return np.asarray(img)


def photo_pairs(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two uint8 ``(4, size, size, 3)`` batches: pairs 0-1 are shifted crops of one photo (close), pairs
    2-3 two different photos (far), so both small and large distances are compared."""
    photos = [_square_photo(name, size) for name in PHOTOS]
    crop = [p[:size, :size] for p in photos]
    shifted = [p[SHIFT:, SHIFT:] for p in photos]
    a = np.stack([crop[0], crop[1], crop[2], crop[3]])
    b = np.stack([shifted[0], shifted[1], crop[3], crop[0]])
    return a, b


def unit(pixels: np.ndarray) -> Tensor:
    """uint8 ``(N, H, W, 3)`` -> float ``(N, 3, H, W)`` in [0, 1]: the input every adapter takes."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div(255)


def pil_images(pixels: np.ndarray) -> list[Image.Image]:
    return [Image.fromarray(p) for p in pixels]


@dataclass(frozen=True)
class Tolerance:
    """``|ours - theirs| <= atol + rtol * theirs`` per pair. The absolute part is for near-duplicate pairs: an
    input perturbation (PIL's uint8 rounding) moves a small cosine distance by a similar absolute amount as a
    large one, i.e. by far more relative to it."""

    rtol: float
    atol: float

    def ratio(self, ours: Tensor, theirs: Tensor) -> float:
        """The largest per-pair gap as a fraction of the tolerance: < 1 is equal, >> 1 clearly different."""
        return ((ours - theirs).abs() / (self.atol + self.rtol * theirs.abs())).max().item()


#: Float rounding only (the same numbers summed in another order): measured gaps ~1e-7 relative.
FLOAT_ROUNDING = Tolerance(rtol=1e-5, atol=1e-7)
#: Resizing to 224: the official transforms resize the uint8 PIL image (PIL rounds and clips to uint8 after each
#: of its two passes: 64 -> 224 up to 10 grey levels apart next to sharp edges, 0.2 on average), we resize in
#: float. Measured on these photos at sizes 32 to 448: at most 0.32 of this tolerance (CLIP, DINO, DreamSim-DINO);
#: a bicubic resize without antialiasing lands 2 to 3.3 times past it at 448 -> 224.
PIL_RESIZE = Tolerance(rtol=5e-3, atol=3e-4)
#: How far past the resize tolerance a wrong input range must land (measured: 100 times and more).
CLEARLY = 10.0


def write_random_alexnet(checkpoints: Path, file_name: str, seed: int = 0) -> Path:
    """A seeded random torchvision AlexNet saved where torchvision looks for its ImageNet file, so the
    official packages (lpips, torchmetrics) and our adapter all load the same trunk from it (half precision:
    a 120 MB file rather than 240; every side casts it back to float32 identically)."""
    import torchvision

    torch.manual_seed(seed)
    state = {k: v.half() for k, v in torchvision.models.alexnet(weights=None).state_dict().items()}
    checkpoints.mkdir(parents=True, exist_ok=True)
    torch.save(state, checkpoints / file_name)
    return checkpoints / file_name
