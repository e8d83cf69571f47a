"""Batched, seeded image augmentations for training (images ``(N, 3, H, W)`` in [0, 1]).

Why not ``torchvision.transforms.v2``: its transforms draw from the global RNG, one image at a time.
Here every random number comes from an explicit CPU ``torch.Generator`` and the number of draws per
batch is fixed whatever the outcomes, so a run is reproducible from the seed, the same on CPU and
GPU, and resumable exactly (the generator's state is checkpointed). Each image still gets its own
random decision, as torchvision's per-image transforms would give.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: Luma weights of torchvision's ``rgb_to_grayscale`` (ITU-R 601, as rounded there).
LUMA = (0.2989, 0.587, 0.114)


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device: torch.device) -> Tensor:
    return (low + (high - low) * torch.rand(n, generator=gen)).to(device)


def _coin(n: int, p: float, gen: torch.Generator, device: torch.device) -> Tensor:
    return (torch.rand(n, generator=gen) < p).to(device)


def grayscale(x: Tensor) -> Tensor:
    """Luma ``(N, 1, H, W)``."""
    w = x.new_tensor(LUMA).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _per_image(f: Tensor) -> Tensor:
    return f.view(-1, 1, 1, 1)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return (x * _per_image(factor)).clamp(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    f = _per_image(factor)
    return (f * x + (1.0 - f) * mean).clamp(0.0, 1.0)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    f = _per_image(factor)
    return (f * x + (1.0 - f) * grayscale(x)).clamp(0.0, 1.0)


def rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, b = x.unbind(dim=1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    safe_delta = torch.where(delta > 0, delta, torch.ones_like(delta))
    safe_max = torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    s = delta / safe_max
    rc, gc, bc = (maxc - r) / safe_delta, (maxc - g) / safe_delta, (maxc - b) / safe_delta
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, torch.remainder(h / 6.0, 1.0), torch.zeros_like(h))
    return torch.stack((h, s, maxc), dim=1)


def hsv_to_rgb(x: Tensor) -> Tensor:
    h, s, v = x.unbind(dim=1)
    h6 = h * 6.0
    i = torch.floor(h6)
    f = h6 - i
    i = i.long() % 6
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    table = {
        0: (v, t, p),
        1: (q, v, p),
        2: (p, v, t),
        3: (p, q, v),
        4: (t, p, v),
        5: (v, p, q),
    }
    out = torch.zeros_like(x)
    for sector, rgb in table.items():
        mask = (i == sector).unsqueeze(1)
        out = torch.where(mask, torch.stack(rgb, dim=1), out)
    return out


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue by ``shift`` turns (in [-0.5, 0.5])."""
    hsv = rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 1.0)
    return hsv_to_rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), dim=1)).clamp(0.0, 1.0)


def random_hflip(x: Tensor, gen: torch.Generator, p: float = 0.5) -> Tensor:
    """Flip each image left-right with probability ``p``."""
    flip = _coin(x.shape[0], p, gen, x.device)
    return torch.where(_per_image(flip), x.flip(-1), x)


@dataclass(frozen=True)
class ColorJitter:
    """torchvision's ``ColorJitter(b, c, s, h)`` applied with probability ``p``, per image.

    As in torchvision, the four adjustments run in a random order (drawn per image) with factors
    uniform in [1 - b, 1 + b], [1 - c, 1 + c], [1 - s, 1 + s] and a hue shift uniform in [-h, h].
    """

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    p: float = 0.8

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n, dev = x.shape[0], x.device
        apply = _coin(n, self.p, gen, dev)
        factors = (
            _uniform(n, 1 - self.brightness, 1 + self.brightness, gen, dev),
            _uniform(n, 1 - self.contrast, 1 + self.contrast, gen, dev),
            _uniform(n, 1 - self.saturation, 1 + self.saturation, gen, dev),
            _uniform(n, -self.hue, self.hue, gen, dev),
        )
        order = torch.rand(n, 4, generator=gen).argsort(dim=1).to(dev)
        ops = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
        out = x.clone()
        for position in range(4):
            for k, op in enumerate(ops):
                mask = apply & (order[:, position] == k)
                if bool(mask.any()):
                    out[mask] = op(out[mask], factors[k][mask])
        return out


def gaussian_noise(x: Tensor, sigma: float, gen: torch.Generator) -> Tensor:
    """``x + N(0, sigma^2)`` per pixel, unclamped: the noise randomized smoothing certifies under.

    Unclamped because the smoothing theorem is for plain Gaussian noise on the [0, 1] image; training
    on clamped noise would teach a different distribution from the one the smoothed decision sees.
    ``sigma == 0`` returns ``x`` itself and draws nothing, so runs without noise keep their numbers.
    """
    if sigma == 0:
        return x
    return x + sigma * torch.randn(x.shape, generator=gen).to(device=x.device, dtype=x.dtype)


def random_grayscale(x: Tensor, gen: torch.Generator, p: float = 0.2) -> Tensor:
    """Replace each image by its luma (on all three channels) with probability ``p``."""
    gray = _coin(x.shape[0], p, gen, x.device)
    return torch.where(_per_image(gray), grayscale(x).expand_as(x), x)


def distill_views(x: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """The paper's two views of a batch: (flip) and (flip + colour jitter p=0.8 + grayscale p=0.2)."""
    view1 = random_hflip(x, gen)
    view2 = random_grayscale(ColorJitter()(random_hflip(x, gen), gen), gen)
    return view1, view2


def triplet_flip(
    ref: Tensor, x0: Tensor, x1: Tensor, gen: torch.Generator, *, flip: bool = True, rot90: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """The same random flip (and quarter turn) on the three images of each triplet.

    One geometric transform per triplet keeps the human judgment valid; independent flips would
    make x0 or x1 differ from the reference by the flip itself.
    """
    n, dev = ref.shape[0], ref.device
    images = [ref, x0, x1]
    if flip:
        mask = _per_image(_coin(n, 0.5, gen, dev))
        images = [torch.where(mask, im.flip(-1), im) for im in images]
    if rot90:
        if ref.shape[-1] != ref.shape[-2]:
            raise ValueError("rot90 augmentation needs square images")
        turns = torch.randint(0, 4, (n,), generator=gen).to(dev)
        rotated = []
        for im in images:
            out = im.clone()
            for k in (1, 2, 3):
                mask = turns == k
                if bool(mask.any()):
                    out[mask] = torch.rot90(im[mask], k, dims=(-2, -1))
            rotated.append(out)
        images = rotated
    return images[0], images[1], images[2]
