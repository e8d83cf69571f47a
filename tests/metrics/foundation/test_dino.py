"""dino adapter against timm and DreamSim's DINO feature, offline, random weights (tiny ViTs of the same classes)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from torch import nn

timm = pytest.importorskip("timm")

from lipsim_bench.metrics import WeightsUnavailableError, get_metric_spec  # noqa: E402
from lipsim_bench.metrics.foundation import dino as D  # noqa: E402
from lipsim_bench.metrics.foundation import weights as W  # noqa: E402
from tests.metrics.adapter_checks import assert_differentiable_and_batch_invariant  # noqa: E402

TINY = {"depth": 2, "embed_dim": 64, "num_heads": 2}


def tiny_timm(size: int = 32) -> nn.Module:
    """timm's vit_base_patch16_224.dino code path (same class, cfg, blocks), 2 blocks of width 64."""
    torch.manual_seed(0)
    return timm.create_model(D.TIMM_NAME, pretrained=False, img_size=size, **TINY).eval()


def tiny_dreamsim_vit(size: int = 32) -> nn.Module:
    """The DINO repository's ViT (DreamSim's copy) with the same tiny shape."""
    from dreamsim.feature_extraction.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=[size],
        patch_size=16,
        num_classes=0,
        qkv_bias=True,
        mlp_ratio=4,
        norm_layer=functools.partial(nn.LayerNorm, eps=1e-6),
        **TINY,
    ).eval()


def dreamsim_cls(vit: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """DreamSim's 'cls' feature: a forward hook on the last block, token 0 (ViTExtractor._extract_cls)."""
    feats = []
    handle = vit.blocks[-1].register_forward_hook(lambda module, inputs, output: feats.append(output))
    try:
        vit(x)
    finally:
        handle.remove()
    return feats[0][:, 0]


def _normalize(x: torch.Tensor) -> torch.Tensor:
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    return (x - torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_DEFAULT_STD).view(
        1, 3, 1, 1
    )


def test_features_equal_timm_and_dreamsim() -> None:
    model = tiny_timm()
    ours_pre = D.DinoMetric(model, "cls_prenorm", image_size=32)
    ours_post = D.DinoMetric(model, "cls", image_size=32)
    theirs = tiny_dreamsim_vit()
    theirs.load_state_dict(model.state_dict(), strict=True)  # same parameter names as the DINO repository
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        pre, post = ours_pre.embed(x), ours_post.embed(x)
        assert torch.allclose(pre, dreamsim_cls(theirs, _normalize(x)), atol=1e-5)  # DreamSim's DINO feature
        assert torch.equal(post, model(_normalize(x)))  # timm's forward (num_classes=0: post-norm CLS)
        assert torch.allclose(post, theirs(_normalize(x)), atol=1e-5)  # the DINO repository's forward
        assert torch.allclose(post, model.norm(pre), atol=1e-5)  # they differ by exactly the final LayerNorm
        assert not torch.allclose(pre, post, atol=1e-3)


@pytest.mark.parametrize("feature", D.FEATURES)
@pytest.mark.parametrize("size", [32, 40])  # native, and resized inside embed
def test_gradients_reach_pixels_and_batch_equals_singles(feature: str, size: int) -> None:
    metric = D.DinoMetric(tiny_timm(), feature, image_size=32).requires_grad_(False)
    assert_differentiable_and_batch_invariant(metric, 4, size)


def test_full_size_prenorm_equals_dreamsim_dino() -> None:
    """The one full-size test: ViT-B/16 at 224, timm vs DreamSim's ViT on the same random weights."""
    from dreamsim.feature_extraction.vision_transformer import vit_base

    metric = get_metric_spec("dino").factory(pretrained=False).eval()
    assert metric.feature == "cls_prenorm"
    theirs = vit_base(patch_size=16, num_classes=0).eval()
    theirs.load_state_dict(metric.model.state_dict(), strict=True)
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(metric.embed(x), dreamsim_cls(theirs, _normalize(x)), atol=1e-4)


@pytest.fixture
def tiny_factory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The registered factory builds a tiny model (timm.create_model with tiny kwargs); empty caches."""
    monkeypatch.setattr(timm, "create_model", functools.partial(timm.create_model, img_size=224, **TINY))
    monkeypatch.setenv(W.ENV_WEIGHTS_DIR, str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def _hf_snapshot(cache: Path, repo_id: str, filename: str, state: dict, commit: str = "1" * 40) -> None:
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    if filename.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(state, str(repo / "snapshots" / commit / filename))
    else:
        torch.save(state, repo / "snapshots" / commit / filename)


@pytest.mark.parametrize("where", ["hf-weights-dir", "dino-release-in-dreamsim-cache"])
def test_pretrained_loads_local_files_only(tiny_factory: None, tmp_path: Path, where: str) -> None:
    spec = get_metric_spec("dino")
    assert not spec.is_available()
    with pytest.raises(WeightsUnavailableError, match="fetch dino"):
        spec.factory()
    source = timm.create_model(D.TIMM_NAME, pretrained=False).eval()
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if where == "hf-weights-dir":
        _hf_snapshot(tmp_path / "weights" / "huggingface" / "hub", D.HF_REPO, "model.safetensors", state)
    else:  # the DINO release file, where DreamSim's torch.hub.load puts it
        (tmp_path / "xdg" / "dreamsim" / "checkpoints").mkdir(parents=True)
        torch.save(state, tmp_path / "xdg" / "dreamsim" / "checkpoints" / D.DINO_RELEASE_FILE)
    assert spec.is_available()
    metric = spec.factory(feature="cls").eval()
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(metric.embed(x), source(_normalize(x)))
