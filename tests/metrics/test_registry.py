import pytest
import torch

from lipsim_bench import registry as bench_registry
from lipsim_bench.metrics import (
    MetricError,
    PerceptualMetric,
    WeightsUnavailableError,
    create_metric,
    get_metric_spec,
    list_metrics,
    register_metric,
    registry,
    unregister_metric,
)


def test_pixel_l2_is_registered_bundled_and_exact() -> None:
    assert "pixel-l2" in list_metrics(bundled_only=True)
    metric = create_metric("pixel-l2")
    assert not metric.training and metric.lipschitz == 1.0
    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert torch.allclose(metric(a, b), (a - b).flatten(1).norm(dim=1))


def test_register_create_unregister() -> None:
    @register_metric("test-scaled", description="toy")
    class Scaled(PerceptualMetric):
        def __init__(self, scale: float = 1.0) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.tensor(scale))

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return self.weight * x.mean(dim=(2, 3))

    try:
        metric = create_metric("test-scaled", scale=2.0)
        assert isinstance(metric, Scaled) and not metric.training
        assert not any(p.requires_grad for p in metric.parameters())
        assert get_metric_spec("test-scaled").description == "toy"
        with pytest.raises(MetricError, match="bad options for metric 'test-scaled'"):
            create_metric("test-scaled", colour="red")
    finally:
        unregister_metric("test-scaled")
    assert "test-scaled" not in list_metrics()


def test_unknown_metric_lists_known() -> None:
    with pytest.raises(MetricError, match="unknown metric 'nope'.*pixel-l2"):
        create_metric("nope")


def test_unavailable_weights_say_how_to_get_them() -> None:
    @register_metric("test-offline", weights="a checkpoint", available=lambda: False, how_to_get="download X to Y")
    def build() -> PerceptualMetric:
        raise AssertionError("must not be built")

    try:
        with pytest.raises(WeightsUnavailableError, match="not available here.*download X to Y"):
            create_metric("test-offline")
    finally:
        unregister_metric("test-offline")


def test_entry_point_plugins_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = []

    class FakeEntryPoint:
        name, value = "fake", "fake_pkg:metrics"

        def load(self) -> None:
            loaded.append(True)
            register_metric("test-plugin")(type("Plugin", (PerceptualMetric,), {"embed": lambda self, x: x}))

    monkeypatch.setattr(registry.METRICS, "_loaded", False)
    monkeypatch.setattr(
        bench_registry, "entry_points", lambda group: [FakeEntryPoint()] if group == registry.ENTRY_POINT_GROUP else []
    )
    try:
        assert "test-plugin" in list_metrics()
        assert loaded == [True]
    finally:
        unregister_metric("test-plugin")


def test_broken_plugin_warns_but_builtins_survive(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        name, value = "broken", "broken_pkg"

        def load(self) -> None:
            raise ImportError("no module named broken_pkg")

    monkeypatch.setattr(registry.METRICS, "_loaded", False)
    monkeypatch.setattr(
        bench_registry, "entry_points", lambda group: [Broken()] if group == registry.ENTRY_POINT_GROUP else []
    )
    with pytest.warns(UserWarning, match="broken"):
        names = list_metrics()
    assert "pixel-l2" in names


def test_random_weights_build_without_available_weights() -> None:
    """pretrained=False is the offline test path: the architecture, random weights, no files needed."""

    @register_metric("test-arch-only", available=lambda: False, how_to_get="nothing here")
    class ArchOnly(PerceptualMetric):
        def __init__(self, pretrained: bool = True) -> None:
            super().__init__()
            assert not pretrained

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)

    try:
        assert isinstance(create_metric("test-arch-only", pretrained=False), ArchOnly)
        with pytest.raises(WeightsUnavailableError):
            create_metric("test-arch-only")
    finally:
        unregister_metric("test-arch-only")


def test_certifiable_is_known_before_building() -> None:
    """From the factory's class or return annotation: the dry run lists certificates only where they can exist."""
    from lipsim_bench.metrics import get_metric_spec

    assert get_metric_spec("lipsim-tiny").certifiable() is True and get_metric_spec("pixel-l2").certifiable() is True
    assert get_metric_spec("convsim-tiny").certifiable() is False and get_metric_spec("clip").certifiable() is False

    def unannotated():
        return None

    assert registry.MetricSpec("x", unannotated).certifiable() is None


def test_flat_adapters_hash_their_own_files_not_their_siblings() -> None:
    """pixel.py and convsim.py sit side by side in the metrics package: editing one must not rekey the other,
    while LipSim's adapter hashes its whole sub-package (network, layers)."""
    from lipsim_bench.metrics.fingerprint import _source_files

    pixel = {p.name for p in _source_files(get_metric_spec("pixel-l2").factory)}
    convsim = {p.name for p in _source_files(get_metric_spec("convsim-tiny").factory)}
    lipsim = {p.name for p in _source_files(get_metric_spec("lipsim-tiny").factory)}
    assert "pixel.py" in pixel and "convsim.py" not in pixel
    assert "convsim.py" in convsim and "pixel.py" not in convsim
    assert {"network.py", "layers.py"} <= lipsim
    assert get_metric_spec("pixel-l2").source_id() != get_metric_spec("convsim-tiny").source_id()
