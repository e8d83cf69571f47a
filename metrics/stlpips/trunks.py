"""The shift-tolerant trunks of ST-LPIPS (Ghildyal and Liu, ECCV 2022), written from their published layout.

Each trunk is the anti-aliased network of the ``shift_tolerant`` variant in ``stlpips-pytorch`` 0.0.2: every
stride-2 step becomes a stride-1 operation followed by a blur pool (a 3x3 binomial filter, reflection padding
of 2 on each side, stride 2), and AlexNet's first conv runs at stride 1. The modules sit in five slices whose
children carry the official global indices (``slice2.5`` is layer 5 of the feature stack), so the published
state dict's trunk keys (``net.slice<k>.<i>.*``) name exactly our parameters and buffers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Blur-pool filter size of the shift-tolerant variant (``blur_filter_size=3`` in stlpips.LPIPS).
FILTER_SIZE = 3


class BlurPool(nn.Module):
    """Anti-aliased downsampling: reflection pad of ``filter_size - 1`` on each side ("pad_more"), then a
    depthwise binomial blur at stride 2. The filter is a buffer, as in the published state dict (``filt``)."""

    def __init__(self, channels: int, filter_size: int = FILTER_SIZE) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0]) if filter_size == 3 else None
        if taps is None:
            raise ValueError(f"only the shift-tolerant variant's 3-tap filter is built, got {filter_size}")
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (kernel / kernel.sum())[None, None].repeat(channels, 1, 1, 1))
        self.pad = filter_size - 1

    def forward(self, x: Tensor) -> Tensor:
        padded = F.pad(x, (self.pad,) * 4, mode="reflect")
        return F.conv2d(padded, self.filt, stride=2, groups=x.shape[1])


class SlicedTrunk(nn.Module):
    """A feature stack cut into slices; :meth:`forward` returns each slice's output (the LPIPS taps)."""

    def __init__(self, layers: Sequence[nn.Module], cuts: Sequence[tuple[int, int]], channels: Sequence[int]) -> None:
        super().__init__()
        self.channels = tuple(channels)
        for number, (start, stop) in enumerate(cuts, start=1):
            children = OrderedDict((str(i), layers[i]) for i in range(start, stop))
            self.add_module(f"slice{number}", nn.Sequential(children))
        self.n_slices = len(cuts)

    def forward(self, x: Tensor) -> list[Tensor]:
        taps = []
        for number in range(1, self.n_slices + 1):
            x = getattr(self, f"slice{number}")(x)
            taps.append(x)
        return taps


def alexnet_trunk() -> SlicedTrunk:
    """ST-LPIPS's shift-tolerant AlexNet (taps after the five ReLUs; the last max pool is never used)."""
    layers = [
        nn.Conv2d(3, 64, kernel_size=11, stride=1, padding=2),
        BlurPool(64),
        nn.ReLU(),  # 2
        nn.MaxPool2d(kernel_size=3, stride=1),
        BlurPool(64),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),  # 6
        nn.MaxPool2d(kernel_size=3, stride=1),
        BlurPool(192),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),  # 10
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),  # 12
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),  # 14
    ]
    return SlicedTrunk(layers, [(0, 3), (3, 7), (7, 11), (11, 13), (13, 15)], (64, 192, 384, 256, 256))


#: VGG16 (configuration D): conv widths and "M" for a max pool (stride 1) + blur pool.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


def vgg16_trunk() -> SlicedTrunk:
    """ST-LPIPS's shift-tolerant VGG16 (taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3)."""
    layers: list[nn.Module] = []
    channels = 3
    for width in _VGG16:
        if width == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=1), BlurPool(channels)]
        else:
            layers += [nn.Conv2d(channels, int(width), kernel_size=3, padding=1), nn.ReLU()]
            channels = int(width)
    return SlicedTrunk(layers, [(0, 4), (4, 10), (10, 18), (18, 26), (26, 34)], (64, 128, 256, 512, 512))


TRUNKS = {"alex": alexnet_trunk, "vgg": vgg16_trunk}
