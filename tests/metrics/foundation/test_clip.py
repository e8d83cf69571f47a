"""clip / open-clip / rclip adapters against open_clip itself, offline, on tiny configs with random weights."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

open_clip = pytest.importorskip("open_clip")

from lipsim_bench.metrics import (  # noqa: E402
    WeightsUnavailableError,
    get_metric_spec,
    list_metrics,
    registry,  # noqa: E402
)
from lipsim_bench.metrics.foundation import clip as C  # noqa: E402
from lipsim_bench.metrics.foundation import weights as W  # noqa: E402
from tests.metrics.adapter_checks import assert_differentiable_and_batch_invariant  # noqa: E402

TEXT = {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}
TINY = {
    "lipsim-test-tiny-vit": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
        "text_cfg": TEXT,
    },
    "lipsim-test-tiny-vit-quickgelu": {
        "embed_dim": 32,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
        "text_cfg": TEXT,
    },
    # open_clip's TimmModel path, as convnext_base_w (timm trunk, no pool override, linear projection)
    "lipsim-test-tiny-convnext": {
        "embed_dim": 32,
        "vision_cfg": {
            "timm_model_name": "convnext_atto",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "timm_drop": 0.0,
            "timm_drop_path": 0.1,
            "image_size": 64,
        },
        "text_cfg": TEXT,
    },
}
SIZE = {"lipsim-test-tiny-vit": 32, "lipsim-test-tiny-vit-quickgelu": 32, "lipsim-test-tiny-convnext": 64}


@pytest.fixture(scope="module", autouse=True)
def tiny_configs(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("open_clip_configs")
    for name, cfg in TINY.items():
        (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)


@pytest.fixture
def offline_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights dir and empty default caches: only what a test writes is found."""
    monkeypatch.setenv(W.ENV_WEIGHTS_DIR, str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "weights"


def make_hf_snapshot(cache: Path, repo_id: str, files: dict[str, bytes], commit: str = "0" * 40) -> Path:
    """The Hugging Face hub cache layout (refs/main -> snapshots/<commit>/<file>)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    return snapshot


def _normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _state_bytes(model: torch.nn.Module, path: Path) -> bytes:
    torch.save(model.state_dict(), path)
    return path.read_bytes()


@pytest.mark.parametrize("name", ["lipsim-test-tiny-vit-quickgelu", "lipsim-test-tiny-convnext"])
def test_embedding_is_open_clip_encode_image(name: str) -> None:
    torch.manual_seed(0)
    metric = C.create_open_clip_metric(name, image_size=SIZE[name]).eval()
    reference = open_clip.create_model(name).eval()  # independent build, same weights
    reference.visual.load_state_dict(metric.visual.state_dict())
    x = torch.rand(3, 3, SIZE[name], SIZE[name])
    with torch.no_grad():
        assert torch.equal(metric.embed(x), reference.encode_image(_normalize(x)))


def test_preprocess_matches_open_clip_transform_at_native_size() -> None:
    """At the model's size, our preprocess is open_clip's own val transform of the PIL image (exactly)."""
    name = "lipsim-test-tiny-vit-quickgelu"
    _, _, transform = open_clip.create_model_and_transforms(name)
    metric = C.create_open_clip_metric(name, image_size=32)
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).unsqueeze(0)
    assert torch.allclose(metric.preprocess(x), transform(Image.fromarray(pixels)).unsqueeze(0), atol=1e-6)


def test_resize_is_close_to_open_clip_pil_resize() -> None:
    """Downscaling 96 -> 32: our antialiased bicubic vs open_clip's PIL bicubic (uint8 rounding apart)."""
    name = "lipsim-test-tiny-vit-quickgelu"
    _, _, transform = open_clip.create_model_and_transforms(name)
    metric = C.create_open_clip_metric(name, image_size=32).eval()
    small = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    smooth = torch.nn.functional.interpolate(small, size=(96, 96), mode="bilinear", align_corners=False)
    pixels = (smooth[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    x = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).unsqueeze(0)
    ours, theirs = metric.preprocess(x), transform(Image.fromarray(pixels)).unsqueeze(0)
    error = (ours - theirs).abs() * torch.tensor(C.OPENAI_CLIP_STD).view(1, 3, 1, 1) * 255  # in grey levels
    assert error.mean() < 0.35 and error.max() < 1.01  # PIL rounds to uint8: within one grey level
    with torch.no_grad():
        assert torch.nn.functional.cosine_similarity(metric.visual(ours), metric.visual(theirs)).item() > 0.999


@pytest.mark.parametrize("size", [32, 48])  # native, and resized inside embed
def test_gradients_reach_pixels_and_batch_equals_singles(size: int) -> None:
    torch.manual_seed(0)
    metric = C.create_open_clip_metric("lipsim-test-tiny-vit-quickgelu", image_size=32).eval().requires_grad_(False)
    assert_differentiable_and_batch_invariant(metric, 4, size)


def test_clip_full_size_is_vit_b32_with_quickgelu() -> None:
    """The one full-size build: the registered factory, offline, random weights."""
    metric = get_metric_spec("clip").factory(pretrained=False).eval()
    acts = {type(block.mlp.gelu).__name__ for block in metric.visual.transformer.resblocks}
    assert acts == {"QuickGELU"}
    assert metric.visual.conv1.kernel_size == (32, 32) and metric.visual.output_dim == 512
    assert not hasattr(metric, "transformer")  # text tower dropped
    with torch.no_grad():
        e = metric.embed(torch.rand(2, 3, 256, 256))
    assert e.shape == (2, 512) and torch.isfinite(e).all()


@pytest.mark.parametrize("spec", [C.CLIP_OPENAI, *C.OPENCLIP_LAION400M.values()], ids=lambda s: s.tag)
def test_hf_repos_and_activation_agree_with_open_clip_registry(spec: C.OpenClipTag) -> None:
    cfg = open_clip.get_pretrained_cfg(spec.model_name("quickgelu"), spec.tag)
    assert cfg["hf_hub"].rstrip("/") == spec.hf_repo
    assert cfg["quick_gelu"] is True  # trained with QuickGELU: our default activation
    assert tuple(cfg["mean"]) == C.OPENAI_CLIP_MEAN and tuple(cfg["std"]) == C.OPENAI_CLIP_STD
    assert open_clip.get_model_config(spec.model_name("quickgelu"))["quick_gelu"] is True


def test_registered_names() -> None:
    names = set(list_metrics())
    expected = {"clip", "open-clip", "rclip"} | {
        f"rclip-{m}-{a}" for m in ("tecoa", "fare") for a in ("convnext", "vitb16", "vitb32")
    }
    assert expected <= names
    assert "TeCoA4-convnext_base_w" in get_metric_spec("rclip").weights
    for name in expected:
        assert "lipsim_bench.metrics.foundation.weights fetch" in get_metric_spec(name).how_to_get


def test_tag_weights_found_in_weights_dir_and_loaded_strictly(offline_caches: Path, tmp_path: Path) -> None:
    spec = C.OpenClipTag("lipsim-test-tiny-vit", "tiny", "org/tiny-clip")
    assert not spec.available()
    with pytest.raises(WeightsUnavailableError, match="fetch clip"):
        spec.build(True, "quickgelu", name="clip", image_size=32)
    source = open_clip.create_model("lipsim-test-tiny-vit-quickgelu").eval()
    make_hf_snapshot(
        offline_caches / "huggingface" / "hub",
        spec.hf_repo,
        {"open_clip_pytorch_model.bin": _state_bytes(source, tmp_path / "sd.pt")},
    )
    assert spec.available()
    metric = spec.build(True, "quickgelu", name="clip", image_size=32).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(metric.embed(x), source.encode_image(_normalize(x)))
        gelu = spec.build(True, "gelu", name="clip", image_size=32).eval()  # same weights, GELU: differs
        assert not torch.allclose(gelu.embed(x), metric.embed(x))


def test_hub_repo_found_in_default_cache_and_loaded_through_its_config(
    offline_caches: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(W.ENV_WEIGHTS_DIR)
    spec = C.RobustClip("org/tiny-robust", "lipsim-test-tiny-convnext", "tiny robust")
    assert not spec.available()
    source = open_clip.create_model("lipsim-test-tiny-convnext").eval()
    config = {
        "model_cfg": TINY["lipsim-test-tiny-convnext"],
        "preprocess_cfg": {"mean": list(C.OPENAI_CLIP_MEAN), "std": list(C.OPENAI_CLIP_STD)},
    }
    make_hf_snapshot(
        tmp_path / "hf_home" / "hub",
        spec.hf_repo,
        {
            "open_clip_config.json": json.dumps(config).encode(),
            "open_clip_pytorch_model.bin": _state_bytes(source, tmp_path / "sd.pt"),
        },
    )
    assert spec.available()
    metric = spec.build(True, name="rclip", image_size=64).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(metric.embed(x), source.encode_image(_normalize(x)))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["open-clip", "rclip-tecoa-convnext", "rclip-fare-vitb16", "rclip-tecoa-vitb32"])
def test_every_architecture_builds_offline(name: str) -> None:
    metric = get_metric_spec(name).factory(pretrained=False).eval()
    with torch.no_grad():
        e = metric.embed(torch.rand(2, 3, 224, 224))
    assert e.ndim == 2 and e.shape[0] == 2 and torch.isfinite(e).all()


def test_fetch_command_targets_the_weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m lipsim_bench.metrics.foundation.weights fetch NAME --dir DIR`` downloads into DIR's cache layout."""
    for key in (W.ENV_WEIGHTS_DIR, "HF_HOME", "TORCH_HOME", "HF_HUB_OFFLINE"):  # restored after the test
        monkeypatch.setenv(key, "unset")
    seen = {}
    spec = get_metric_spec("clip")
    record = lambda: seen.update(hf=W.hf_caches()[0], hub=W.torch_hubs()[0], ds=W.dreamsim_caches()[0])  # noqa: E731
    monkeypatch.setitem(registry.METRICS._entries, "clip", dataclasses.replace(spec, fetch=record))
    W.main(["fetch", "clip", "--dir", str(tmp_path)])
    assert seen == {
        "hf": tmp_path / "huggingface" / "hub",
        "hub": tmp_path / "torch" / "hub",
        "ds": tmp_path / "dreamsim",
    }
