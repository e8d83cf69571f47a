"""DreamSim adapters through DreamSim's real loading path, against cache folders generated here (random weights).

``dreamsim(pretrained=True, cache_dir=...)`` reads backbone files and a LoRA adapter from its cache
folder, and for DINO branches ``torch.hub.load('facebookresearch/dino:main', ...)`` from the same
folder. The tests write that layout with random weights (never committed: pytest's tmp folders):

* ``dino_vitb16`` with a stand-in hub repo whose ``hubconf.dino_vitb16`` builds the DINO ViT at
  width 64 (12 blocks: DreamSim hooks block 11), so the whole path runs in a second;
* ``clip_vitb32`` at full size (the real ViT-B/32 file layout, about 350 MB in tmp);
* the ensemble at full size: marked slow.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("dreamsim")
pytest.importorskip("peft")

from lipsim_bench.metrics import WeightsUnavailableError, get_metric_spec  # noqa: E402
from lipsim_bench.metrics.foundation import dreamsim as DS  # noqa: E402
from lipsim_bench.metrics.foundation import weights as W  # noqa: E402
from tests.metrics.adapter_checks import assert_differentiable_and_batch_invariant  # noqa: E402

HUBCONF = textwrap.dedent(
    '''
    """Stand-in for facebookresearch/dino's hubconf.py: same entry point, URL and model, at width {width}."""
    from functools import partial

    import torch
    from dreamsim.feature_extraction.vision_transformer import VisionTransformer

    dependencies = ["torch"]
    WIDTH = {width}


    def dino_vitb16(pretrained=True, **kwargs):
        model = VisionTransformer(patch_size=16, embed_dim=WIDTH, depth=12, num_heads=WIDTH // 64, mlp_ratio=4, qkv_bias=True,
                                  norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_classes=0, **kwargs)
        if pretrained:
            state_dict = torch.hub.load_state_dict_from_url(
                url="https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
                map_location="cpu",
            )
            model.load_state_dict(state_dict, strict=True)
        return model
    '''
)


def write_dino_hub(cache: Path, width: int) -> None:
    """The torch.hub repo folder and DINO checkpoint DreamSim's DINO branch loads, plus its head file."""
    from functools import partial

    from dreamsim.feature_extraction.vision_transformer import DINOHead, VisionTransformer

    repo = cache / DS.DINO_HUB_REPO
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "hubconf.py").write_text(HUBCONF.format(width=width))
    vit = VisionTransformer(
        patch_size=16,
        embed_dim=width,
        depth=12,
        num_heads=width // 64,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
    )
    (cache / "checkpoints").mkdir(exist_ok=True)
    torch.save(vit.state_dict(), cache / DS.DINO_HUB_CHECKPOINT)
    # dino_vitb16_pretrain.pth: DreamSim copies the DINO head (unused by the 'cls' feature) out of it
    head = DINOHead(768, 2048).state_dict()
    head["last_layer.weight"] = head.pop("last_layer.weight_v")
    keys = (
        "mlp.0.weight",
        "mlp.0.bias",
        "mlp.2.weight",
        "mlp.2.bias",
        "mlp.4.weight",
        "mlp.4.bias",
        "last_layer.weight",
    )
    torch.save({"student": {f"module.head.{k}": head[k] for k in keys}}, cache / "dino_vitb16_pretrain.pth")


def write_clip_backbone(cache: Path, model_type: str) -> None:
    """``<model_type>_pretrain.pth.tar`` as DreamSim's load_(open_)clip_as_dino read it."""
    vit, proj = DS.random_backbone(model_type)
    torch.save({"state_dict": {**vit.state_dict(), "proj": proj}}, cache / f"{model_type}_pretrain.pth.tar")


def write_lora(cache: Path, dreamsim_type: str) -> nn.Module:
    """Build the model the way dreamsim() does from this cache, add a random LoRA, save it; return the model."""
    from dreamsim.config import dreamsim_args
    from dreamsim.model import PerceptualModel
    from peft import LoraConfig, get_peft_model

    with W.preserve_torch_hub_dir():
        model = PerceptualModel(
            **dreamsim_args["model_config"][dreamsim_type], device="cpu", load_dir=str(cache), normalize_embeds=True
        )
    model = get_peft_model(
        model, LoraConfig(r=16, lora_alpha=0.5, lora_dropout=0.3, bias="none", target_modules=["qkv"])
    )
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # zero at init: make the adapter matter
            param.data.normal_(0, 0.5)
    tag = "ensemble" if dreamsim_type == "ensemble" else f"{dreamsim_type}_single"
    model.save_pretrained(str(cache / f"{tag}_lora"))
    return model.eval().requires_grad_(False)


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights dir; returns the DreamSim cache folder inside it."""
    monkeypatch.setenv(W.ENV_WEIGHTS_DIR, str(tmp_path / "weights"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder = tmp_path / "weights" / "dreamsim"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def tiny_dino_cache(caches: Path) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    write_dino_hub(caches, width=64)
    return caches, write_lora(caches, "dino_vitb16")


def test_real_loading_path_from_cache_restores_torch_hub_dir(tiny_dino_cache: tuple[Path, nn.Module]) -> None:
    cache, reference = tiny_dino_cache
    spec = get_metric_spec("dreamsim-dino")
    assert spec.is_available() and DS.find_cache("dino_vitb16") == cache
    hub_before = torch.hub.get_dir()
    metric = spec.factory().eval()  # dreamsim(pretrained=True, cache_dir=<weights dir>/dreamsim, ...)
    assert torch.hub.get_dir() == hub_before  # dreamsim set it to the cache folder; we restored it
    loaded = {k: v for k, v in metric.model.state_dict().items() if "lora_" in k}
    saved = {k: v for k, v in reference.state_dict().items() if "lora_" in k}
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)
    x = torch.rand(3, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(metric.embed(x), reference.embed(x), atol=1e-6)  # DreamSim's embed, same weights
        # 1 - cos is DreamSim's own distance
        assert torch.allclose(metric(x[:2], x[1:]), reference(x[:2], x[1:]), atol=1e-6)


def test_gradients_reach_pixels_and_batch_equals_singles(tiny_dino_cache: tuple[Path, nn.Module]) -> None:
    metric = get_metric_spec("dreamsim-dino").factory().eval().requires_grad_(False)
    assert_differentiable_and_batch_invariant(metric, 3, 256)  # resized to 224 inside embed


def test_missing_files_raise_with_instructions(caches: Path) -> None:
    for name in DS.TYPES:
        spec = get_metric_spec(name)
        assert not spec.is_available()
        with pytest.raises(WeightsUnavailableError, match=f"fetch {name} "):
            spec.factory()
    write_clip_backbone(caches, "clip_vitb32")  # backbone without its LoRA adapter: still unavailable
    assert not get_metric_spec("dreamsim-clip").is_available()


def test_clip_vitb32_full_size_loading_path_equals_random_builder(caches: Path) -> None:
    """Full-size ViT-B/32: files in DreamSim's layout -> dreamsim() -> same embedding as the source model;
    and our file-free random builder is the same architecture (strict state load, equal outputs)."""
    torch.manual_seed(0)
    write_clip_backbone(caches, "clip_vitb32")
    reference = write_lora(caches, "clip_vitb32")
    metric = get_metric_spec("dreamsim-clip").factory().eval()
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference.embed(x)
        assert torch.allclose(metric.embed(x), expected, atol=1e-6)
        built = DS.build_random_dreamsim("clip_vitb32")
        built.load_state_dict(reference.state_dict(), strict=True)
        assert [type(m).__name__ for m in built.modules()] == [type(m).__name__ for m in reference.modules()]
        for extractor, ref_extractor in zip(
            built.base_model.model.extractor_list, reference.base_model.model.extractor_list
        ):
            extractor.proj = ref_extractor.proj  # a plain tensor attribute, not in the state dict
        assert torch.allclose(built.embed(x), expected, atol=1e-6)
        # .to() reaches DreamSim's plain-tensor projection too (what a move to a GPU needs)
        assert torch.allclose(metric.double().embed(x.double()), expected.double(), atol=1e-5)


@pytest.mark.slow
def test_ensemble_full_size_loading_path(caches: Path) -> None:
    """The ensemble (DINO ViT-B/16 via torch.hub, CLIP and OpenCLIP ViT-B/16), about 1 GB of files in tmp."""
    torch.manual_seed(0)
    write_dino_hub(caches, width=768)
    write_clip_backbone(caches, "clip_vitb16")
    write_clip_backbone(caches, "open_clip_vitb16")
    reference = write_lora(caches, "ensemble")
    spec = get_metric_spec("dreamsim")
    assert spec.is_available()
    hub_before = torch.hub.get_dir()
    metric = spec.factory().eval()
    assert torch.hub.get_dir() == hub_before
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        e = metric.embed(x)
        assert e.shape == (2, 1792)
        assert torch.allclose(e, reference.embed(x), atol=1e-6)
        built = DS.build_random_dreamsim("ensemble")
        built.load_state_dict(reference.state_dict(), strict=True)
        for extractor, ref_extractor in zip(
            built.base_model.model.extractor_list, reference.base_model.model.extractor_list
        ):
            if hasattr(ref_extractor, "proj"):
                extractor.proj = ref_extractor.proj
        assert torch.allclose(built.embed(x), e, atol=1e-5)
