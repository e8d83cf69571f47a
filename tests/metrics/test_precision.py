"""Reduced precision keeps a bound-free metric's decisions, natural and adversarial, and its gradients.

Model: the registry's DINO adapter (:class:`DinoMetric`) around timm's DINO ViT-S/16 with random
weights at 64 x 64 (17 tokens: the real blocks, attention, layer norms and GELUs, cheap on CPU);
the full-size registry build is the slow test at the end.

Tolerance: ``TOLERANCE`` = 5% relative margin. A triplet's relative margin is |d0 - d1| / max(d0, d1);
bf16 must keep the decision of every triplet whose fp32 margin exceeds it. That follows if each
distance moves by less than half of it (2.5% of max(d0, d1)), which is asserted too; bf16 measured
about 1.3% at most here (on the near-tie triplet with the smallest distances), 0.1-0.5% on most.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lipsim_bench.attacks import APGD
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.twoafc import TwoAFCClassifier
from lipsim_bench.metrics import PerceptualMetric, create_metric
from lipsim_bench.metrics.precision import PRECISIONS, ReducedPrecisionMetric, _tf32, precision_applies, with_precision

timm = pytest.importorskip("timm")

TOLERANCE = 0.05  # relative margin below which a triplet is a near tie and may change sides
N, SIZE, EPS, STEPS = 8, 64, 0.5, 5


@pytest.fixture(scope="module")
def vit() -> PerceptualMetric:
    from lipsim_bench.metrics.foundation.dino import DinoMetric

    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch16_224.dino", pretrained=False, img_size=SIZE)
    return DinoMetric(model, image_size=SIZE).eval().requires_grad_(False)


def _triplets(size: int) -> tuple[Tensor, Tensor, Tensor]:
    """References and two distortions of graded noise, so margins range from near ties to clear picks."""
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(N, 3, size, size, generator=gen)
    s0 = torch.linspace(0.05, 0.4, N).view(N, 1, 1, 1)
    s1 = s0.flip(0).roll(1, 0)
    x0 = (ref + s0 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
    x1 = (ref + s1 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
    return ref, x0, x1


@torch.no_grad()
def _distances(metric: PerceptualMetric, ref: Tensor, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    e_ref, e0, e1 = metric.embed(torch.cat([ref, x0, x1])).chunk(3)
    return metric.distance(e_ref, e0), metric.distance(e_ref, e1)


def disagreements(
    reference: tuple[Tensor, Tensor], candidate: tuple[Tensor, Tensor], tolerance: float = TOLERANCE
) -> list[int]:
    """Triplets whose decision (d0 < d1) differs although the reference's relative margin exceeds ``tolerance``."""
    d0, d1 = reference
    margin = (d0 - d1).abs() / torch.maximum(d0, d1)
    differ = (d0 < d1) != (candidate[0] < candidate[1])
    return (differ & (margin > tolerance)).nonzero().flatten().tolist()


def relative_error(reference: tuple[Tensor, Tensor], candidate: tuple[Tensor, Tensor]) -> float:
    """Largest change of a distance, relative to the larger distance of its triplet (the margin's scale)."""
    scale = torch.maximum(*reference)
    return float(
        torch.maximum((candidate[0] - reference[0]).abs(), (candidate[1] - reference[1]).abs()).div(scale).max()
    )


class Permuted(PerceptualMetric):
    """A broken fast path: right numbers, wrong images (embeddings rolled along the batch)."""

    def __init__(self, metric: PerceptualMetric) -> None:
        super().__init__()
        self.inner = metric

    def embed(self, x: Tensor) -> Tensor:
        return self.inner.embed(x).roll(1, 0)


def test_bf16_keeps_natural_decisions_beyond_the_tolerance(vit: PerceptualMetric) -> None:
    ref, x0, x1 = _triplets(SIZE)
    fp32 = _distances(vit, ref, x0, x1)
    fast = with_precision(vit, "bf16")
    bf16 = _distances(fast, ref, x0, x1)
    assert isinstance(fast, ReducedPrecisionMetric) and fast.embed(ref[:2]).dtype == torch.float32
    assert relative_error(fp32, bf16) < TOLERANCE / 2
    assert relative_error(fp32, bf16) > 0  # bf16 really ran: not the fp32 path under another name
    assert disagreements(fp32, bf16) == []
    margins = (fp32[0] - fp32[1]).abs() / torch.maximum(*fp32)
    assert (margins > TOLERANCE).sum() >= N // 2 and (fp32[0] < fp32[1]).any() and (fp32[0] > fp32[1]).any()


def test_the_agreement_check_fails_on_a_broken_fast_path(vit: PerceptualMetric) -> None:
    ref, x0, x1 = _triplets(SIZE)
    fp32 = _distances(vit, ref, x0, x1)
    assert disagreements(fp32, _distances(Permuted(vit), ref, x0, x1)) != []
    assert disagreements(fp32, (fp32[1], fp32[0])) != []  # swapped distances: every clear decision reversed


def test_apgd_under_bf16_flips_what_it_flips_in_fp32(vit: PerceptualMetric) -> None:
    ref, x0, x1 = _triplets(SIZE)
    fp32 = _distances(vit, ref, x0, x1)
    labels = (fp32[1] < fp32[0]).long()  # every triplet starts "correct" in fp32
    clear = ((fp32[0] - fp32[1]).abs() / torch.maximum(*fp32)) > TOLERANCE  # a near tie may start wrong in bf16
    adversarial = {}
    for precision in ("fp32", "bf16"):
        metric = with_precision(vit, precision)
        x_adv = APGD("l2", eps=EPS, steps=STEPS, seed=0)(TwoAFCClassifier.from_images(metric, x0, x1), ref, labels)
        adversarial[precision] = _distances(metric, x_adv, x0, x1)
    a0, a1 = adversarial["fp32"]
    flipped = (a1 < a0).long() != labels
    assert flipped[clear].any() and not flipped[clear].all()  # the radius is neither too small nor too large to tell
    keep = clear.nonzero().flatten()
    kept = lambda d: (d[0][keep], d[1][keep])  # noqa: E731
    assert disagreements(kept(adversarial["fp32"]), kept(adversarial["bf16"])) == []


def test_gradients_flow_through_the_wrapper(vit: PerceptualMetric) -> None:
    ref, x0, _ = _triplets(SIZE)
    grads = []
    for precision in ("fp32", "bf16"):
        metric = with_precision(vit, precision)
        x = ref.clone().requires_grad_(True)
        target = metric.embed_no_grad(x0)
        metric.distance(metric.embed(x), target).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        grads.append(x.grad.flatten(1))
    assert torch.nn.functional.cosine_similarity(*grads, dim=1).min() > 0.9  # the same ascent direction


def test_certifiable_metrics_and_fp32_are_returned_unchanged(vit: PerceptualMetric) -> None:
    for name in ("lipsim-tiny", "pixel-l2"):
        metric = create_metric(name)
        assert not precision_applies(metric)
        for precision in PRECISIONS:
            assert with_precision(metric, precision) is metric
    assert precision_applies(vit) and with_precision(vit, "fp32") is vit
    with pytest.raises(BenchError, match="Lipschitz bound"):
        ReducedPrecisionMetric(create_metric("pixel-l2"), "bf16")


def test_the_wrapper_is_the_same_metric_to_its_callers(vit: PerceptualMetric) -> None:
    fast = with_precision(vit, "bf16")
    assert fast.distance_kind == vit.distance_kind and fast.lipschitz is None and fast.lipschitz_for(SIZE, SIZE) is None
    assert fast.image_size == SIZE and not fast.training  # attributes of the wrapped metric read through
    e = torch.randn(3, 5)
    assert torch.equal(fast.distance(e, e.flip(0)), vit.distance(e, e.flip(0)))


def test_unknown_precision_and_fp16_on_cpu_are_one_line(vit: PerceptualMetric) -> None:
    with pytest.raises(BenchError, match="unknown precision 'fp8'; choose one of fp32, tf32, bf16, fp16"):
        with_precision(vit, "fp8")
    with pytest.raises(BenchError, match="fp16: float16 autocast needs a CUDA device"):
        with_precision(vit, "fp16").embed(torch.rand(1, 3, SIZE, SIZE))


def test_tf32_is_fp32_on_cpu_and_restores_the_cuda_flags(vit: PerceptualMetric) -> None:
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(with_precision(vit, "tf32").embed(x), vit.embed(x))
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with _tf32("cuda"):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


@pytest.mark.slow
def test_bf16_keeps_the_decisions_of_a_full_size_registry_build() -> None:
    """dreamsim-clip as the registry builds it (ViT-B/32 at 224, random weights): the same check."""
    torch.manual_seed(0)  # random weights drawn from the unseeded global stream made this pass or fail by chance
    metric = create_metric("dreamsim-clip", pretrained=False)
    ref, x0, x1 = _triplets(224)
    fp32 = _distances(metric, ref, x0, x1)
    bf16 = _distances(with_precision(metric, "bf16"), ref, x0, x1)
    assert relative_error(fp32, bf16) < TOLERANCE / 2
    assert disagreements(fp32, bf16) == []
