"""APGD's own work beside a channels-last metric: the iterate's copy and the layout of its state, side by side.

Usage: python benchmarks/apgd_layout.py [--metric stlpips-alex] [--n 20] [--steps 20] [--eps 0.5] [--rounds 3]

ST-LPIPS (like convsim and LipSim) embeds channels-last, so the input gradient APGD gets is channels-last while
its state (from the contiguous clean images) is contiguous. Per step that costs two layout changes: the metric
converts the contiguous iterate, and the gradient step mixes the channels-last gradient into the contiguous
iterate. Three ways, alternating in one process on the first ``--n`` sample test triplets (every step taken:
early_stop off, so each way does the same passes):

- ``as is``: APGD, copying each iterate into ``x_old``;
- ``no x_old copy``: ``x_old`` keeps the iterate itself (it is never written again): bit-identical;
- ``channels-last state``: the attack on channels-last clean images, so its whole state follows the gradient's
  layout and neither change happens; NOT bit-identical (the l2 norms of the projections then sum in another
  order), printed with its largest difference and its fooled count.

Also printed: one bare forward+backward of the batch (the floor of a step) and one layout change of the batch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from lipsim_bench.attacks.apgd import _PAD, APGD, APGDState, _l2, _project_l2, _project_linf  # noqa: E402


class NoCopyAPGD(APGD):
    """APGD's momentum step without copying the iterate into ``x_old`` (no one writes it afterwards)."""

    def _momentum_step(self, run: APGDState, x: torch.Tensor, i: int) -> torch.Tensor:
        a = self.momentum if i > 0 else 1.0
        x_adv = run.x_adv
        displacement = x_adv - run.x_old
        run.x_old = x_adv
        if self.norm == "linf":
            z = _project_linf(x_adv + run.step * torch.sign(run.grad), x, self.eps)
            return _project_linf(x_adv + (z - x_adv) * a + displacement * (1 - a), x, self.eps)
        z = x_adv + run.step * run.grad / (_l2(run.grad) + _PAD)
        z = _project_l2(z, x, self.eps, pad=0.0)
        return _project_l2(x_adv + (z - x_adv) * a + displacement * (1 - a), x, self.eps, pad=_PAD)


def timed(fn, repeats: int = 3) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    from lipsim_bench.datasets import create_dataset
    from lipsim_bench.evaluations.twoafc import TwoAFCClassifier
    from lipsim_bench.metrics import create_metric

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", default="stlpips-alex")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eps", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = create_dataset("sample").head(args.n)
    items = [data[i] for i in range(len(data))]
    ref, x0, x1 = (torch.stack([item[k] for item in items]) for k in ("ref", "x0", "x1"))
    metric = create_metric(args.metric).eval().requires_grad_(False)
    classifier = TwoAFCClassifier.from_images(metric, x0, x1, args.metric)
    with torch.no_grad():
        y = classifier(ref).argmax(dim=1)  # every triplet "correct": all of them attacked
    options = {"steps": args.steps, "early_stop": False}
    channels_last = ref.contiguous(memory_format=torch.channels_last)
    ways = {
        "as is": lambda: APGD("l2", args.eps, **options)(classifier, ref, y),
        "no x_old copy": lambda: NoCopyAPGD("l2", args.eps, **options)(classifier, ref, y),
        "channels-last state": lambda: APGD("l2", args.eps, **options)(classifier, channels_last, y),
    }
    outputs = {name: way() for name, way in ways.items()}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            seconds[name].append(time.perf_counter() - started)

    def one_pass() -> None:
        x = ref.clone().requires_grad_(True)
        torch.autograd.grad(classifier(x).sum(), [x])

    floor = timed(one_pass, repeats=10)
    change = timed(lambda: ref.contiguous(memory_format=torch.channels_last), repeats=20)
    reference = outputs["as is"]
    with torch.no_grad():
        fooled = {name: int((classifier(out).argmax(dim=1) != y).sum()) for name, out in outputs.items()}
    print(
        f"{args.metric}: l2 APGD-CE eps {args.eps:g}, {args.steps} steps (+1 start gradient), {len(ref)} sample "
        f"triplets of {'x'.join(map(str, ref.shape[1:]))}, {args.threads} threads, rounds alternating"
    )
    print(
        f"{'way':<22} "
        + " ".join(f"{'round ' + str(i + 1):>8}" for i in range(args.rounds))
        + f" {'median':>8} {'vs as is':>10} {'max |diff|':>11} {'fooled':>6}"
    )
    base = statistics.median(seconds["as is"])
    for name, values in seconds.items():
        diff = float((outputs[name] - reference).abs().max())
        print(
            f"{name:<22} "
            + " ".join(f"{v:8.2f}" for v in values)
            + f" {statistics.median(values):8.2f} {statistics.median(values) / base:9.3f}x {diff:11.3g} {fooled[name]:6d}"
        )
    steps = args.steps + 1
    print(
        f"floor: one bare forward+backward of the batch {floor:.3f} s (x {steps} = {floor * steps:.2f} s); one layout "
        f"change of the batch {1e3 * change:.2f} ms ({100 * change / floor:.2f}% of a pass)"
    )


if __name__ == "__main__":
    main()
