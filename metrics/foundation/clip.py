"""CLIP-family image embeddings through open_clip: ``clip``, ``open-clip`` and robust CLIP (``rclip-*``).

The embedding is open_clip's ``encode_image`` (the projected image feature, not unit-normalised;
1 - cos makes the scale irrelevant) of the resized, mean/std-normalised input; everything happens
inside :meth:`OpenClipMetric.embed`, differentiably.

Preprocessing. Inputs in [0, 1] are resized to 224 x 224 with bicubic interpolation and
antialiasing (``F.interpolate(..., mode="bicubic", antialias=True)``: the a = -0.5 cubic kernel,
widened when downscaling, that PIL's BICUBIC uses), then normalised with OpenAI's CLIP mean/std
(what open_clip's pretrained configs give for every model here, and what Croce et al. hard-code for
every OpenCLIP model). This matches open_clip's PIL-based ``Resize`` up to PIL's uint8 rounding:
downscaling a smooth 96 x 96 image to 32 x 32 differs from PIL by 0.28 grey levels on average and
0.96 at most (without antialiasing: 1.6 and 14). At 224 x 224 (the benchmark's datasets already
are) the resize is the identity. Two differences from open_clip's own transform, both on purpose:
non-square inputs are squashed to 224 x 224 (the protocol's ``Resize((224, 224))``) rather than
shortest-side resized and center-cropped; and ConvNeXt-B (trained at 256) is fed 224 x 224, the
resolution of its robust fine-tuning and of Croce et al.'s perceptual evaluation.

Activations. OpenAI's CLIP and the LAION-400M ViT-B/32 checkpoints were trained with QuickGELU
(x * sigmoid(1.702 x)). open_clip >= 3 no longer special-cases ``pretrained='openai'``:
``create_model('ViT-B-32', pretrained='openai')`` builds a GELU model, loads the weights and only
warns about the mismatch. We therefore build ``ViT-B-32-quickgelu`` (same weights, the
activation they were trained with; identical to the original ``clip`` package and to DreamSim's
CLIP copy, which swaps in QuickGELU). ``activation="gelu"`` gives the mismatched model.

``open-clip`` = ViT-B/32 LAION-400M, tag ``laion400m_e32`` (the last epoch of the 32-epoch run;
``laion400m_e31`` is an option), with QuickGELU by default: it is what those weights were trained
with (their file is ``vit_b_32-quickgelu-laion400m_e32``, open_clip's registry marks the tag
quick_gelu=True). DreamSim's converted copy of this model (``load_open_clip_as_dino``) keeps GELU,
because its conversion was checked against open_clip's GELU ``ViT-B-32``; so DreamSim's published
OpenCLIP baseline (and ``dreamsim-open-clip``, fine-tuned from it) ran with GELU. Use
``activation="gelu"`` to reproduce those numbers; the default is the faithful model.

Robust CLIP (Croce, Schlarmann, Singh, Hein: "Adversarially Robust CLIP Models Induce Better
(Robust) Perceptual Metrics"): the eps = 4/255 l-inf TeCoA / FARE fine-tunes of LAION-2B OpenCLIP
models, published as open_clip hub repos by chs20 (RobustVLM). ``rclip`` = TeCoA ConvNeXt-B, the
best zero-shot robust perceptual metric of that paper (R-CLIP_T).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lipsim_bench.extras import require
from lipsim_bench.metrics.base import PerceptualMetric
from lipsim_bench.metrics.conventions import Conventions, resize_text
from lipsim_bench.metrics.errors import MetricError, WeightsUnavailableError
from lipsim_bench.metrics.foundation import weights as W
from lipsim_bench.metrics.registry import register_metric

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INPUT_SIZE = 224
#: The package version these adapters were checked against (``mirrors`` of their convention records).
OPEN_CLIP_PACKAGE = "open_clip_torch 3.3.0"
#: :func:`resize_square` to INPUT_SIZE, in words (the DINO and DreamSim adapters use it too).
BICUBIC_RESIZE = resize_text(INPUT_SIZE, "bicubic", antialias=True)


def resize_square(x: Tensor, size: int) -> Tensor:
    """Bicubic, antialiased resize of ``(N, C, H, W)`` to ``size`` x ``size`` (identity if already so)."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, as buffers so ``.to(device)`` moves them."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class OpenClipMetric(PerceptualMetric):
    """The image tower of an open_clip model; embedding = ``encode_image`` of the preprocessed input."""

    def __init__(
        self,
        visual: nn.Module,
        image_size: int = INPUT_SIZE,
        mean: Sequence[float] = OPENAI_CLIP_MEAN,
        std: Sequence[float] = OPENAI_CLIP_STD,
    ) -> None:
        super().__init__()
        self.visual = visual  # CLIP.encode_image(x, normalize=False) is exactly self.visual(x)
        self.normalize = Normalize(mean, std)
        self.image_size = image_size

    def preprocess(self, x: Tensor) -> Tensor:
        """[0, 1] images of any size -> what open_clip's image tower expects."""
        return self.normalize(resize_square(x, self.image_size))

    def embed(self, x: Tensor) -> Tensor:
        return self.visual(self.preprocess(x))


def clip_conventions(call: str, resize_note: str = "") -> Conventions:
    """The convention record of an :class:`OpenClipMetric` built by ``call`` (open_clip's, at the stated version)."""
    return Conventions(
        input="(x - mean) / std, OpenAI CLIP mean/std",
        resize=f"{BICUBIC_RESIZE}{resize_note}; open_clip's own transform center-crops",
        distance="1 - cos of encode_image (projected, not unit-normalised)",
        mirrors=f"{OPEN_CLIP_PACKAGE}: {call}",
    )


# --------------------------------------------------------------------------- building


def _open_clip():
    return require("open_clip", "CLIP and OpenCLIP metrics")


def create_open_clip_metric(
    model_name: str,
    *,
    checkpoint: str | None = None,
    local_dir: str | None = None,
    image_size: int = INPUT_SIZE,
    mean: Sequence[float] = OPENAI_CLIP_MEAN,
    std: Sequence[float] = OPENAI_CLIP_STD,
) -> OpenClipMetric:
    """Build from a local checkpoint file, a local open_clip folder (config + weights), or random weights.

    Never downloads: ``checkpoint`` is a file path (strictly loaded by open_clip), ``local_dir`` a
    folder with ``open_clip_config.json`` (a Hugging Face snapshot); with neither, random weights.
    The text tower is dropped once built.
    """
    open_clip = _open_clip()
    if local_dir is not None:
        model = open_clip.create_model(f"local-dir:{local_dir}", device="cpu", require_pretrained=True)
    else:
        model = open_clip.create_model(
            model_name, pretrained=checkpoint, device="cpu", require_pretrained=checkpoint is not None
        )
    return OpenClipMetric(model.visual, image_size=image_size, mean=mean, std=std)


@dataclass(frozen=True)
class OpenClipTag:
    """An open_clip (architecture, pretrained tag) pair and the Hugging Face repo holding its weights."""

    arch: str  # the GELU architecture name; "-quickgelu" is appended for activation="quickgelu"
    tag: str
    hf_repo: str

    def model_name(self, activation: str) -> str:
        if activation not in ("quickgelu", "gelu"):
            raise MetricError(f"activation must be 'quickgelu' or 'gelu', got {activation!r}")
        return self.arch + ("-quickgelu" if activation == "quickgelu" else "")

    def local_file(self):
        return W.find_hf_file(self.hf_repo, W.OPEN_CLIP_HF_FILES)

    def available(self) -> bool:
        return self.local_file() is not None

    def how_to_get(self, metric: str) -> str:
        return W.how_to_get(
            metric, f"open_clip.create_model('{self.arch}-quickgelu', pretrained='{self.tag}'), HF repo {self.hf_repo}"
        )

    def fetch(self) -> None:
        _open_clip().create_model(self.model_name("quickgelu"), pretrained=self.tag, cache_dir=str(W.hf_caches()[0]))

    def build(self, pretrained: bool, activation: str, name: str, image_size: int = INPUT_SIZE) -> OpenClipMetric:
        checkpoint = None
        if pretrained:
            path = self.local_file()
            if path is None:
                raise WeightsUnavailableError(
                    f"{self.arch} '{self.tag}' weights are not on this machine; {self.how_to_get(name)}"
                )
            checkpoint = str(path)
        return create_open_clip_metric(self.model_name(activation), checkpoint=checkpoint, image_size=image_size)


# Hugging Face repos from open_clip's pretrained registry (tests check they still agree with it).
CLIP_OPENAI = OpenClipTag("ViT-B-32", "openai", "timm/vit_base_patch32_clip_224.openai")
OPENCLIP_LAION400M = {
    "laion400m_e32": OpenClipTag("ViT-B-32", "laion400m_e32", "timm/vit_base_patch32_clip_224.laion400m_e32"),
    "laion400m_e31": OpenClipTag("ViT-B-32", "laion400m_e31", "timm/vit_base_patch32_clip_224.laion400m_e31"),
}


@register_metric(
    "clip",
    description="OpenAI CLIP ViT-B/32 image embedding (open_clip, QuickGELU), 1 - cos",
    weights=f"open_clip ViT-B-32 'openai' (HF {CLIP_OPENAI.hf_repo})",
    available=CLIP_OPENAI.available,
    fingerprint=lambda: W.cache_file_fingerprint(CLIP_OPENAI.local_file()),
    fetch=CLIP_OPENAI.fetch,
    requires=("open_clip",),
    how_to_get=CLIP_OPENAI.how_to_get("clip"),
    conventions=clip_conventions("create_model('ViT-B-32-quickgelu', pretrained='openai')"),
)
def clip(pretrained: bool = True, activation: str = "quickgelu") -> OpenClipMetric:
    """OpenAI CLIP ViT-B/32: encode_image of 224x224 bicubic-resized, CLIP-normalised input."""
    return CLIP_OPENAI.build(pretrained, activation, name="clip")


@register_metric(
    "open-clip",
    description="OpenCLIP ViT-B/32 LAION-400M (laion400m_e32, QuickGELU) image embedding, 1 - cos",
    weights=f"open_clip ViT-B-32-quickgelu 'laion400m_e32' (HF {OPENCLIP_LAION400M['laion400m_e32'].hf_repo})",
    available=OPENCLIP_LAION400M["laion400m_e32"].available,
    fingerprint=lambda: W.cache_file_fingerprint(OPENCLIP_LAION400M["laion400m_e32"].local_file()),
    fetch=OPENCLIP_LAION400M["laion400m_e32"].fetch,
    requires=("open_clip",),
    how_to_get=OPENCLIP_LAION400M["laion400m_e32"].how_to_get("open-clip"),
    conventions=clip_conventions("create_model('ViT-B-32-quickgelu', pretrained='laion400m_e32')"),
)
def open_clip_laion400m(
    pretrained: bool = True, tag: str = "laion400m_e32", activation: str = "quickgelu"
) -> OpenClipMetric:
    """OpenCLIP ViT-B/32 LAION-400M; ``activation="gelu"`` reproduces DreamSim's (mismatched) baseline."""
    if tag not in OPENCLIP_LAION400M:
        raise MetricError(f"tag must be one of {sorted(OPENCLIP_LAION400M)}, got {tag!r}")
    return OPENCLIP_LAION400M[tag].build(pretrained, activation, name="open-clip")


# --------------------------------------------------------------------------- robust CLIP (Croce et al.)


@dataclass(frozen=True)
class RobustClip:
    """A robust CLIP published as an open_clip hub repo; ``arch`` is the built-in config it shares."""

    hf_repo: str
    arch: str
    label: str

    def local_dir(self):
        return W.find_hf_snapshot(self.hf_repo, ["open_clip_config.json"], W.OPEN_CLIP_HF_FILES)

    def available(self) -> bool:
        return self.local_dir() is not None

    def how_to_get(self, metric: str) -> str:
        return W.how_to_get(metric, f"open_clip.create_model('hf-hub:{self.hf_repo}')")

    def fetch(self) -> None:
        _open_clip().create_model(f"hf-hub:{self.hf_repo}", cache_dir=str(W.hf_caches()[0]))

    def build(self, pretrained: bool, name: str, image_size: int = INPUT_SIZE) -> OpenClipMetric:
        if not pretrained:  # the repo's config is open_clip's built-in one for this architecture
            return create_open_clip_metric(self.arch, image_size=image_size)
        folder = self.local_dir()
        if folder is None:
            raise WeightsUnavailableError(f"{self.label} weights are not on this machine; {self.how_to_get(name)}")
        return create_open_clip_metric(self.arch, local_dir=str(folder), image_size=image_size)


RCLIP = {
    "rclip-tecoa-convnext": RobustClip(
        "chs20/TeCoA4-convnext_base_w-laion2B-s13B-b82K-augreg",
        "convnext_base_w",
        "TeCoA eps=4/255 ConvNeXt-B (LAION-2B) CLIP",
    ),
    "rclip-fare-convnext": RobustClip(
        "chs20/FARE4-convnext_base_w-laion2B-s13B-b82K-augreg",
        "convnext_base_w",
        "FARE eps=4/255 ConvNeXt-B (LAION-2B) CLIP",
    ),
    "rclip-tecoa-vitb16": RobustClip(
        "chs20/TeCoA4-ViT-B-16-laion2B-s34B-b88K", "ViT-B-16", "TeCoA eps=4/255 ViT-B/16 (LAION-2B) CLIP"
    ),
    "rclip-fare-vitb16": RobustClip(
        "chs20/FARE4-ViT-B-16-laion2B-s34B-b88K", "ViT-B-16", "FARE eps=4/255 ViT-B/16 (LAION-2B) CLIP"
    ),
    "rclip-tecoa-vitb32": RobustClip(
        "chs20/TeCoA4-ViT-B-32-laion2B-s34B-b79K", "ViT-B-32", "TeCoA eps=4/255 ViT-B/32 (LAION-2B) CLIP"
    ),
    "rclip-fare-vitb32": RobustClip(
        "chs20/FARE4-ViT-B-32-laion2B-s34B-b79K", "ViT-B-32", "FARE eps=4/255 ViT-B/32 (LAION-2B) CLIP"
    ),
}
RCLIP["rclip"] = RCLIP["rclip-tecoa-convnext"]  # R-CLIP_T ConvNeXt-B: the paper's best robust zero-shot metric


def _register_rclip(name: str, spec: RobustClip) -> None:
    def factory(pretrained: bool = True) -> OpenClipMetric:
        return spec.build(pretrained, name)

    factory.__name__ = factory.__qualname__ = name.replace("-", "_")
    factory.__doc__ = f"Robust CLIP: {spec.label} (Croce et al.), image embedding, 1 - cos."
    default = " (default robust CLIP)" if name == "rclip" else ""
    register_metric(
        name,
        description=f"{spec.label}{default}, image embedding, 1 - cos",
        weights=f"open_clip hf-hub:{spec.hf_repo}",
        available=spec.available,
        how_to_get=spec.how_to_get(name),
        fingerprint=lambda: f"{spec.hf_repo}@{(spec.local_dir() or Path('missing')).name}",
        fetch=spec.fetch,
        requires=("open_clip",),
        conventions=clip_conventions(
            f"create_model('hf-hub:{spec.hf_repo}')",
            ", also for ConvNeXt-B (trained at 256; fine-tuned at 224)" if "convnext" in spec.arch else "",
        ),
    )(factory)


for _name, _spec in RCLIP.items():
    _register_rclip(_name, _spec)
