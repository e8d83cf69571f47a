"""The committed FLOPs table and the dry-run cost model read from it (no model is built here)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from lipsim_bench.metrics import PerceptualMetric
from lipsim_bench.protocol.cost import (
    DEFAULT_GPU,
    GPU_PROFILES,
    count_flops,
    estimate_seconds,
    load_cost_table,
    unit_flops,
)

#: benchmarks/flops.py's default list: every metric a paper run can ask for.
TABLED = (
    "clip",
    "open-clip",
    "dino",
    "lpips",
    "rclip",
    "rclip-tecoa-vitb16",
    "rclip-tecoa-vitb32",
    "dreamsim-clip",
    "dreamsim-open-clip",
    "dreamsim-dino",
    "dreamsim",
    "lipsim",
    "lipsim-tiny",
    "convsim-tiny",
    "pixel-l2",
)
VIT_B16 = ("dino", "rclip-tecoa-vitb16", "dreamsim-dino")
VIT_B32 = ("clip", "open-clip", "rclip-tecoa-vitb32", "dreamsim-clip", "dreamsim-open-clip")


def test_table_has_every_metric_with_positive_costs() -> None:
    table = load_cost_table()
    assert set(TABLED) <= set(table)
    for name in TABLED:
        row = table[name]
        if name == "pixel-l2":  # no matmul or convolution: FlopCounterMode counts nothing
            assert row["forward_gflops"] == 0.0
            continue
        assert row["forward_gflops"] > 0 and row["params_m"] > 0, name
        assert row["forward_backward_gflops"] > row["forward_gflops"], name


def test_table_orders_architectures_sensibly() -> None:
    table = load_cost_table()
    fwd = {name: row["forward_gflops"] for name, row in table.items()}
    assert min(fwd[n] for n in VIT_B16) > 3 * max(fwd[n] for n in VIT_B32)  # 197 vs 50 tokens
    assert fwd["dreamsim"] > max(fwd[n] for n in ("dreamsim-clip", "dreamsim-open-clip", "dreamsim-dino"))
    assert fwd["lipsim"] > 10 * fwd["lipsim-tiny"]


def test_unit_cost_model() -> None:
    row = load_cost_table()["clip"]
    f, b = row["forward_gflops"] * 1e9, row["forward_backward_gflops"] * 1e9
    assert unit_flops("clip", "natural", 10, steps=100, restarts=1) == pytest.approx(30 * f)
    assert unit_flops("clip", "certified", 10, steps=100, restarts=1) == pytest.approx(30 * f)
    # an attacked triplet: (steps + the pass at the start) x restarts forward+backward passes
    assert unit_flops("clip", "apgd", 10, steps=100, restarts=2) == pytest.approx(10 * (4 * f + 202 * b))
    assert unit_flops("clip", "direct", 10, steps=100, restarts=5) == pytest.approx(10 * (100 * b + 2 * f))


@pytest.mark.parametrize("attack", ["apgd", "pgd", "torchattacks-apgd", "fmn"])
def test_attack_cost_is_linear_in_steps_and_triplets(attack: str) -> None:
    def cost(n: int, steps: int) -> float:
        flops = unit_flops("dreamsim", attack, n, steps=steps, restarts=1)
        assert flops is not None
        return flops

    assert cost(200, 50) == pytest.approx(2 * cost(100, 50))
    assert cost(100, 300) - cost(100, 200) == pytest.approx(cost(100, 200) - cost(100, 100))
    assert cost(100, 200) > cost(100, 100)


def test_estimate_uses_the_gpu_throughput_and_skips_unknown_metrics() -> None:
    flops = unit_flops("lipsim", "apgd", 2000, steps=100, restarts=1)
    assert flops is not None
    assert estimate_seconds("lipsim", "apgd", 2000, steps=100, restarts=1) == pytest.approx(
        flops / (DEFAULT_GPU.sustained_tflops * 1e12)
    )
    h100 = estimate_seconds("dino", "apgd", 100, steps=10, restarts=1, gpu=GPU_PROFILES["h100"])
    a100 = estimate_seconds("dino", "apgd", 100, steps=10, restarts=1, gpu=GPU_PROFILES["a100"])
    assert h100 is not None and a100 is not None and a100 > h100
    assert unit_flops("no-such-metric", "natural", 10, steps=1, restarts=1) is None
    assert estimate_seconds("no-such-metric", "apgd", 10, steps=1, restarts=1) is None
    # metrics sharing a tabled architecture cost the same
    assert unit_flops("lipsim-margin0.2", "natural", 5, steps=1, restarts=1) == unit_flops(
        "lipsim", "natural", 5, steps=1, restarts=1
    )
    with pytest.raises(ValueError, match="no cost model"):
        unit_flops("clip", "no-such-evaluation", 10, steps=1, restarts=1)


class LinearMetric(PerceptualMetric):
    """Flattened pixels through one linear layer: 2 * in * out FLOPs per image."""

    def __init__(self, size: int, out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(3 * size * size, out)

    def embed(self, x: Tensor) -> Tensor:
        return self.proj(x.flatten(1))


class AttentionMetric(PerceptualMetric):
    """Pixels as tokens through nn.MultiheadAttention, whose inference fast path hides its matmuls."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(3, dim)
        self.attn = nn.MultiheadAttention(dim, num_heads=2, batch_first=True)

    def embed(self, x: Tensor) -> Tensor:
        tokens = self.proj(x.flatten(2).transpose(1, 2))
        return self.attn(tokens, tokens, tokens, need_weights=False)[0].mean(1)


def test_count_flops_of_a_linear_metric_matches_the_hand_count() -> None:
    metric = LinearMetric(size=4, out=5).eval().requires_grad_(False)
    forward, forward_backward = count_flops(metric, 4)
    assert forward == 2 * 48 * 5
    assert forward_backward == 2 * forward  # + the input gradient, no weight gradient (frozen)


def test_count_flops_sees_inside_multihead_attention() -> None:
    metric = AttentionMetric(dim=8).eval().requires_grad_(False)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    forward, _ = count_flops(metric, 4)
    t, d = 16, 8  # tokens, width
    expected = 2 * t * 3 * d + 2 * t * d * 3 * d + 2 * 2 * t * t * d + 2 * t * d * d  # proj, qkv, qk^T and av, out
    assert forward == expected
    assert torch.backends.mha.get_fastpath_enabled() == fastpath
