"""DreamSim (Fu, Tamir et al. 2023) through the ``dreamsim`` package: ``dreamsim`` (ensemble),
``dreamsim-clip``, ``dreamsim-open-clip``, ``dreamsim-dino`` (single-branch, NIGHT-fine-tuned).

Loading is DreamSim's own: ``dreamsim(pretrained=True, device=..., cache_dir=..., dreamsim_type=...)``
(backbone files + LoRA adapter from its cache folder; DINO branches also ``torch.hub.load``
``facebookresearch/dino:main`` from the same folder, which DreamSim makes the process-wide
torch.hub directory: we restore it afterwards). We only call it once every file it needs is on disk
(see :data:`REQUIRED_FILES`), so it never downloads; otherwise the factory raises
:class:`WeightsUnavailableError` with the command that fetches them.

Embedding = DreamSim's ``embed`` (each branch normalises with its own mean/std inside; features are
concatenated, then centred and unit-normalised), distance = 1 - cos, exactly DreamSim's distance.
DreamSim expects 224 x 224 inputs in [0, 1] (its preprocessing is a PIL bicubic resize to
224 x 224); :meth:`DreamSimMetric.embed` does a bicubic antialiased resize to 224 (the identity at 224).

``pretrained=False`` builds the same architecture (branches, LoRA wrapping) with random weights and
no files: DreamSim's single file-touching step, ``ViTExtractor.create_model``, is replaced during
construction by a builder of the same modules (DreamSim's own ``vit_base``, with its CLIP
conversions: LayerNorm as ``pos_drop`` = CLIP's ``ln_pre``, LayerNorm eps 1e-5, QuickGELU for OpenAI
CLIP, a 768 x 512 projection). For tests and speed measurements only.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from lipsim_bench.extras import require
from lipsim_bench.metrics.base import PerceptualMetric
from lipsim_bench.metrics.conventions import Conventions
from lipsim_bench.metrics.errors import WeightsUnavailableError
from lipsim_bench.metrics.foundation import weights as W
from lipsim_bench.metrics.foundation.clip import BICUBIC_RESIZE, INPUT_SIZE, resize_square
from lipsim_bench.metrics.registry import register_metric

#: registered name -> dreamsim_type
TYPES = {
    "dreamsim": "ensemble",
    "dreamsim-clip": "clip_vitb32",
    "dreamsim-open-clip": "open_clip_vitb32",
    "dreamsim-dino": "dino_vitb16",
}

DINO_HUB_REPO = "facebookresearch_dino_main"  # torch.hub's folder for 'facebookresearch/dino:main'
DINO_HUB_CHECKPOINT = "checkpoints/dino_vitbase16_pretrain.pth"  # what its hubconf's dino_vitb16 loads

#: Files DreamSim reads from its cache_dir, per type: its own check list (``download_weights``), the
#: LoRA adapter's files inside the adapter folder, and for DINO branches the torch.hub repo and
#: checkpoint (fetched on first use into the same folder, since DreamSim points torch.hub there).
REQUIRED_FILES: dict[str, list[str]] = {
    "ensemble": [
        "dino_vitb16_pretrain.pth",
        "open_clip_vitb16_pretrain.pth.tar",
        "clip_vitb16_pretrain.pth.tar",
        "ensemble_lora/adapter_config.json",
        f"{DINO_HUB_REPO}/hubconf.py",
        DINO_HUB_CHECKPOINT,
    ],
    "dino_vitb16": [
        "dino_vitb16_pretrain.pth",
        "dino_vitb16_single_lora/adapter_config.json",
        f"{DINO_HUB_REPO}/hubconf.py",
        DINO_HUB_CHECKPOINT,
    ],
    "clip_vitb32": ["clip_vitb32_pretrain.pth.tar", "clip_vitb32_single_lora/adapter_config.json"],
    "open_clip_vitb32": ["open_clip_vitb32_pretrain.pth.tar", "open_clip_vitb32_single_lora/adapter_config.json"],
}
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")

DREAMSIM = "DreamSim metrics"
#: DreamSim's ``_preprocess``: each branch normalises with its own mean/std.
BRANCH_NORMALISATION = {
    "ensemble": "per branch: ImageNet mean/std (DINO), OpenAI CLIP mean/std (CLIP, OpenCLIP)",
    "clip_vitb32": "OpenAI CLIP mean/std",
    "open_clip_vitb32": "OpenAI CLIP mean/std",
    "dino_vitb16": "ImageNet mean/std",
}
#: The package version these adapters were checked against (``mirrors`` of their convention records).
DREAMSIM_PACKAGE = "dreamsim 0.2.1"


def _has_files(folder: Path, dreamsim_type: str) -> bool:
    if not all((folder / f).is_file() for f in REQUIRED_FILES[dreamsim_type]):
        return False
    adapter = next(folder / Path(f).parent for f in REQUIRED_FILES[dreamsim_type] if f.endswith("adapter_config.json"))
    return any((adapter / f).is_file() for f in ADAPTER_FILES)


def find_cache(dreamsim_type: str) -> Path | None:
    """The first DreamSim cache folder holding every file ``dreamsim_type`` needs, or None."""
    for folder in W.dreamsim_caches():
        if _has_files(folder, dreamsim_type):
            return folder
    return None


class DreamSimMetric(PerceptualMetric):
    """DreamSim's ``embed`` of the input resized to 224 x 224; distance 1 - cos."""

    def __init__(self, model: nn.Module, dreamsim_type: str, image_size: int = INPUT_SIZE) -> None:
        super().__init__()
        self.model = model  # a peft PeftModel around dreamsim.PerceptualModel, as dreamsim() returns it
        self.dreamsim_type = dreamsim_type
        self.image_size = image_size

    def embed(self, x: Tensor) -> Tensor:
        return self.model.embed(resize_square(x, self.image_size))

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        """``.to(device/dtype)`` for DreamSim's parts that nn.Module does not move: each extractor keeps
        its CLIP projection as a plain tensor and moves it to a fixed ``device`` string at every call."""
        ViTExtractor = require("dreamsim.feature_extraction.extractor", DREAMSIM).ViTExtractor

        super()._apply(fn, recurse)
        device = next(self.model.parameters()).device
        for module in self.model.modules():
            if isinstance(module, ViTExtractor):
                module.device = device
                if isinstance(getattr(module, "proj", None), Tensor):
                    module.proj = fn(module.proj)
        return self


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """DreamSim's known noise: deprecated weight_norm in DINOHead, peft's note on its double LoRA wrap."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message="Already found a `peft_config`", category=UserWarning)
        yield


def load_dreamsim(dreamsim_type: str, cache_dir: str | Path, device: str = "cpu") -> nn.Module:
    """``dreamsim(pretrained=True, ...)`` from a complete cache folder, restoring torch.hub's dir."""
    dreamsim = require("dreamsim", DREAMSIM).dreamsim

    # it prints "Using cached ..." and, for DINO branches, makes cache_dir the process-wide torch.hub dir
    with W.preserve_torch_hub_dir(), contextlib.redirect_stdout(io.StringIO()), _quiet():
        model, _ = dreamsim(pretrained=True, device=device, cache_dir=str(cache_dir), dreamsim_type=dreamsim_type)
    return model


# --------------------------------------------------------------------------- random weights (no files)


class QuickGELU(nn.Module):  # named like DreamSim's own
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


def random_backbone(model_type: str):
    """What ``ViTExtractor.create_model(model_type)`` returns, with random weights and no file access."""
    vit = require("dreamsim.feature_extraction.vision_transformer", DREAMSIM)
    DINOHead, vit_base = vit.DINOHead, vit.vit_base

    if model_type == "dino_vitb16":
        return vit_base(patch_size=16, num_classes=0), DINOHead(768, 2048)
    clip_like = {"clip_vitb16": 16, "clip_vitb32": 32, "open_clip_vitb16": 16, "open_clip_vitb32": 32}
    if model_type not in clip_like:
        raise ValueError(f"no random builder for DreamSim backbone {model_type!r}")
    vit = vit_base(patch_size=clip_like[model_type])
    vit.pos_drop = nn.LayerNorm(vit.embed_dim)  # CLIP's ln_pre, as load_(open_)clip_as_dino do
    if not model_type.startswith("open_clip"):
        for block in vit.blocks:
            block.mlp.act = QuickGELU()
    for module in vit.modules():
        if isinstance(module, nn.LayerNorm):
            module.eps = 1e-5
    proj = torch.randn(vit.embed_dim, 512) * vit.embed_dim**-0.5
    return vit, proj


def build_random_dreamsim(dreamsim_type: str, device: str = "cpu") -> nn.Module:
    """DreamSim's model for ``dreamsim_type`` (LoRA-wrapped like ``dreamsim()``) with random weights."""
    dreamsim_args = require("dreamsim.config", DREAMSIM).dreamsim_args
    ViTExtractor = require("dreamsim.feature_extraction.extractor", DREAMSIM).ViTExtractor
    PerceptualModel = require("dreamsim.model", DREAMSIM).PerceptualModel
    peft = require("peft", DREAMSIM)
    LoraConfig, get_peft_model = peft.LoraConfig, peft.get_peft_model

    original = ViTExtractor.__dict__["create_model"]
    ViTExtractor.create_model = staticmethod(lambda model_type, load_dir="./models": random_backbone(model_type))
    try:
        with _quiet():
            model = PerceptualModel(
                **dreamsim_args["model_config"][dreamsim_type],
                device=device,
                load_dir="/nonexistent",
                normalize_embeds=True,
            )
    finally:
        ViTExtractor.create_model = original
    # DreamSim's released adapters: r=16, alpha=0.5, dropout=0.3 on every attention qkv.
    config = LoraConfig(r=16, lora_alpha=0.5, lora_dropout=0.3, bias="none", target_modules=["qkv"])
    return get_peft_model(model, config).to(device).eval().requires_grad_(False)


# --------------------------------------------------------------------------- registration


def _register(name: str, dreamsim_type: str) -> None:
    how = W.how_to_get(name, f"dreamsim(pretrained=True, cache_dir=DIR/dreamsim, dreamsim_type='{dreamsim_type}')")

    def factory(pretrained: bool = True, cache_dir: str | None = None) -> DreamSimMetric:
        if not pretrained:
            return DreamSimMetric(build_random_dreamsim(dreamsim_type), dreamsim_type)
        folder = Path(cache_dir) if cache_dir else find_cache(dreamsim_type)
        if folder is None or not _has_files(folder, dreamsim_type):
            raise WeightsUnavailableError(f"DreamSim '{dreamsim_type}' weights are not on this machine; {how}")
        return DreamSimMetric(load_dreamsim(dreamsim_type, folder), dreamsim_type)

    def fetch() -> None:
        dreamsim = require("dreamsim", DREAMSIM).dreamsim

        folder = W.dreamsim_caches()[0]
        folder.mkdir(parents=True, exist_ok=True)
        with W.preserve_torch_hub_dir():
            dreamsim(pretrained=True, device="cpu", cache_dir=str(folder), dreamsim_type=dreamsim_type)

    factory.__name__ = factory.__qualname__ = name.replace("-", "_")
    factory.__doc__ = f"DreamSim '{dreamsim_type}' embedding (its embed, centred and unit-normalised), 1 - cos."
    register_metric(
        name,
        description=f"DreamSim {dreamsim_type} (NIGHT-fine-tuned{', DINO+CLIP+OpenCLIP ViT-B/16' if dreamsim_type == 'ensemble' else ''}), 1 - cos",
        weights=f"dreamsim package '{dreamsim_type}' checkpoint (GitHub release zip) in a DreamSim cache folder",
        available=lambda: find_cache(dreamsim_type) is not None,
        fingerprint=lambda: f"{dreamsim_type}@{find_cache(dreamsim_type)}",
        fetch=fetch,
        requires=("dreamsim",),
        how_to_get=how,
        conventions=Conventions(
            input=f"(x - mean) / std inside DreamSim, {BRANCH_NORMALISATION[dreamsim_type]}",
            resize=f"{BICUBIC_RESIZE}; DreamSim's own preprocess: PIL bicubic Resize((224, 224))",
            distance="1 - cos of DreamSim's embed ("
            + ("the 3 branches' features concatenated, " if dreamsim_type == "ensemble" else "")
            + "centred, unit-normalised)",
            mirrors=f"{DREAMSIM_PACKAGE}: dreamsim(pretrained=True, dreamsim_type='{dreamsim_type}')",
        ),
    )(factory)


for _name, _type in TYPES.items():
    _register(_name, _type)
