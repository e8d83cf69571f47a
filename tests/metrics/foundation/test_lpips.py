"""lpips adapter: distance(embed(a), embed(b)) == lpips.LPIPS(net='alex')(2a - 1, 2b - 1), offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

lpips = pytest.importorskip("lpips")

from lipsim_bench.metrics import MetricError, WeightsUnavailableError, get_metric_spec  # noqa: E402
from lipsim_bench.metrics.fingerprint import sha256_file  # noqa: E402
from lipsim_bench.metrics.foundation import lpips as L  # noqa: E402
from lipsim_bench.metrics.foundation import weights as W  # noqa: E402
from tests.metrics.adapter_checks import assert_differentiable_and_batch_invariant  # noqa: E402


@pytest.fixture(scope="module")
def metric() -> L.LPIPSMetric:
    torch.manual_seed(0)
    return (
        get_metric_spec("lpips").factory(pretrained=False).eval().requires_grad_(False)
    )  # shipped heads, random trunk


@pytest.mark.parametrize("shape", [(64, 64), (224, 224), (72, 100)])
def test_distance_equals_lpips_forward(metric: L.LPIPSMetric, shape: tuple[int, int]) -> None:
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()  # an independent instance
    reference.load_state_dict(metric.model.state_dict())
    a, b = torch.rand(3, 3, *shape), torch.rand(3, 3, *shape)
    with torch.no_grad():
        ours = metric.distance(metric.embed(a), metric.embed(b))
        theirs = reference(a * 2 - 1, b * 2 - 1).flatten()
        assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-7)
        assert torch.allclose(ours, reference(a, b, normalize=True).flatten(), rtol=1e-5, atol=1e-7)
        assert torch.equal(metric(a, a), torch.zeros(3))


def test_gradients_reach_pixels_and_batch_equals_singles(metric: L.LPIPSMetric) -> None:
    assert_differentiable_and_batch_invariant(metric, 4, 64)


def test_gradient_is_finite_where_lpips_gives_nan(metric: L.LPIPSMetric, monkeypatch: pytest.MonkeyPatch) -> None:
    """A position where every channel of a feature map is 0 (all ReLUs off): lpips.normalize_tensor's sqrt
    has an infinite slope there and LPIPS's gradient is NaN; our vector_norm gives 0 (same values)."""
    forward = metric.model.net.forward

    def zero_one_position(x: torch.Tensor) -> list[torch.Tensor]:
        outs = list(forward(x))
        mask = torch.ones_like(outs[0])
        mask[..., 0, 0] = 0
        outs[0] = outs[0] * mask
        return outs

    monkeypatch.setattr(metric.model.net, "forward", zero_one_position)
    a, b = torch.rand(1, 3, 64, 64, requires_grad=True), torch.rand(1, 3, 64, 64)
    metric(a, b).sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    a_lpips = a.detach().clone().requires_grad_(True)
    value = metric.model(a_lpips, b, normalize=True)  # the same (patched) network through lpips' forward
    assert torch.allclose(value.flatten(), metric(a, b).detach(), rtol=1e-5)
    value.sum().backward()
    assert a_lpips.grad.isnan().any()


def test_negative_heads_are_rejected() -> None:
    model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    with torch.no_grad():
        model.lin0.model[-1].weight[0, 0] = -1.0
    with pytest.raises(MetricError, match="negative"):
        L.LPIPSMetric(model)


def test_torchvision_alexnet_file_is_loaded_like_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The AlexNet file in <weights dir>/torch/hub/checkpoints: our key mapping == torchvision's own loading."""
    import torchvision

    monkeypatch.setenv(W.ENV_WEIGHTS_DIR, str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    spec = get_metric_spec("lpips")
    assert not spec.is_available()
    with pytest.raises(WeightsUnavailableError, match="fetch lpips"):
        spec.factory()
    hub = tmp_path / "weights" / "torch" / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    torch.manual_seed(1)
    state = {
        k: v.half() for k, v in torchvision.models.alexnet(weights=None).state_dict().items()
    }  # half: smaller file
    torch.save(state, hub / "checkpoints" / L.ALEXNET_FILE)
    monkeypatch.setattr(
        L, "ALEXNET_SHA256_PREFIX", sha256_file(hub / "checkpoints" / L.ALEXNET_FILE)[:8]
    )  # a stand-in file
    assert spec.is_available()
    ours = spec.factory().eval()
    with W.torch_hub_dir(hub):  # torchvision finds the file there and loads it (no download)
        reference = lpips.LPIPS(net="alex", verbose=False).eval()
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(a, b), reference(a, b, normalize=True).flatten(), rtol=1e-5, atol=1e-7)
