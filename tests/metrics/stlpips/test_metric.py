"""stlpips-{alex,vgg}: the package's own ST-LPIPS on the same images gives the same distances, real weights."""

from __future__ import annotations

import pytest
import torch

from lipsim_bench.datasets import create_dataset
from lipsim_bench.metrics import MetricError, create_metric, get_metric_spec
from lipsim_bench.metrics.stlpips import metric as S
from tests.metrics.adapter_checks import assert_differentiable_and_batch_invariant
from tests.metrics.stlpips.official import assert_same_distances, official_stlpips

NETS = ("alex", "vgg")


@pytest.fixture(scope="module", params=NETS)
def pair(request: pytest.FixtureRequest) -> tuple[S.STLPIPS, object]:
    net = request.param
    return create_metric(f"stlpips-{net}").requires_grad_(False), official_stlpips(net)


def sample_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """References and their closer images from the bundled set: shifted views, the case ST-LPIPS was built for."""
    dataset = create_dataset("sample", "test")
    items = [dataset[i] for i in range(n)]
    return torch.stack([item["ref"] for item in items]), torch.stack([item["x0"] for item in items])


@pytest.mark.parametrize("shape", [(64, 64), (72, 100)])
def test_distances_equal_the_package_on_random_images(pair: tuple[S.STLPIPS, object], shape: tuple[int, int]) -> None:
    ours, theirs = pair
    generator = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 3, *shape, generator=generator), torch.rand(3, 3, *shape, generator=generator)
    with torch.no_grad():
        assert_same_distances(ours(a, b), theirs(a, b, normalize=True))
        assert_same_distances(ours(a, b), theirs(2 * a - 1, 2 * b - 1))
        assert torch.equal(ours(a, a), torch.zeros(3))


def test_distances_equal_the_package_on_sample_triplets(pair: tuple[S.STLPIPS, object]) -> None:
    ours, theirs = pair
    ref, x0 = sample_images(6)
    with torch.no_grad():
        assert_same_distances(ours(ref, x0), theirs(ref, x0, normalize=True))


def test_a_wrong_input_range_fails_the_equivalence(pair: tuple[S.STLPIPS, object]) -> None:
    """The check can fail: [0, 1] images given to the package as if they were [-1, 1] (normalize=False), the
    most frequent LPIPS slip, change the distances far beyond rounding."""
    ours, theirs = pair
    ref, x0 = sample_images(6)
    with torch.no_grad():
        slipped = theirs(ref, x0)
        with pytest.raises(AssertionError):
            assert_same_distances(ours(ref, x0), slipped)
        assert ((ours(ref, x0) - slipped.flatten()).abs() / ours(ref, x0)).max() > 0.05


def test_gradient_is_finite_where_the_package_gives_nan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where every channel of a feature map is 0, normalize_tensor's sqrt has an infinite slope: the package's
    gradient is NaN, ours is finite (same distance)."""
    ours, theirs = create_metric("stlpips-alex"), official_stlpips("alex")

    def zero_one_position(forward):
        def wrapped(x: torch.Tensor) -> list[torch.Tensor]:
            taps = list(forward(x))
            mask = torch.ones_like(taps[0])
            mask[..., 0, 0] = 0
            taps[0] = taps[0] * mask
            return taps

        return wrapped

    monkeypatch.setattr(ours.trunk, "forward", zero_one_position(ours.trunk.forward))
    monkeypatch.setattr(theirs.net, "forward", zero_one_position(theirs.net.forward))
    ref, x0 = sample_images(1)
    a = ref.clone().requires_grad_(True)
    ours(a, x0).sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    b = ref.clone().requires_grad_(True)
    theirs(b, x0, normalize=True).sum().backward()
    assert b.grad.isnan().any()


def test_gradients_reach_pixels_and_batch_equals_singles() -> None:
    assert_differentiable_and_batch_invariant(create_metric("stlpips-alex"), 3, 64)


def test_every_published_key_names_one_of_ours() -> None:
    for net in NETS:
        published = set(torch.load(S.wheel_weights(net), map_location="cpu", weights_only=True))
        assert published == {S.published_key(k) for k in S.STLPIPS(net).state_dict()}


def test_registration() -> None:
    alex, vgg = get_metric_spec("stlpips-alex"), get_metric_spec("stlpips-vgg")
    assert alex.bundled and alex.default_run and alex.is_available()
    assert vgg.bundled and not vgg.default_run and vgg.is_available()
    assert alex.metric_class() is S.STLPIPS and alex.certifiable() is False
    assert alex.weights_id() == f"sha256:{S.WEIGHTS_SHA256['alex']}"


def test_negative_heads_are_refused() -> None:
    metric = S.STLPIPS("alex")
    with torch.no_grad():
        metric.heads[1][0, 3] = -0.5
    with pytest.raises(MetricError, match="negative"):
        S.check_heads(list(metric.heads), "ST-LPIPS alex")
