"""Measure this machine once, so the dry run's times are measured rather than assumed.

Usage: python benchmarks/profile_device.py [METRIC ...] [--device cuda] [--batch 32] [--precision fp32]
                                          [--random-weights] [--repeats 5] [--warmup 2] [--out FILE]

For each metric (default: the paper preset's), images/s of ``embed`` under no_grad (forward: the
clean passes) and of ``distance(embed(x), e).sum().backward()`` to the input pixels (forward +
backward: one attack step), at the metric's own input size (224 where it declares none), median of
``--repeats`` timed batches after ``--warmup`` untimed ones, with ``torch.cuda.synchronize`` around
each on CUDA. Each metric runs in its own process: several large models in one process measured
3-10x slower. Writes ``results/device_profile.json`` (``$LIPSIM_BENCH_RESULTS``; ``--out FILE`` to
choose), which ``run_bench.py --dry-run`` reads (``$LIPSIM_BENCH_DEVICE_PROFILE`` names another);
the file is replaced, not merged, so list every metric you want measured in one command.
``--random-weights`` builds each metric with random weights (``LIPSIM_BENCH_RANDOM_WEIGHTS=1``):
the same cost, nothing to download. Certifiable metrics (a Lipschitz bound) always run in fp32.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

DEFAULT_SIZE = 224  # NIGHT's image size, for metrics that declare no input size
FORMAT = 1


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn, device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, device_name: str, batch: int, precision: str, warmup: int, repeats: int) -> dict[str, object]:
    """One metric's rates, in this process (the parent runs it in a fresh one per metric)."""
    from lipsim_bench.devices import resolve_device
    from lipsim_bench.metrics.precision import precision_applies, with_precision
    from lipsim_bench.run.plan import build_metric

    device = resolve_device(device_name)
    metric = build_metric(name, device, seed=0)
    used = precision if precision_applies(metric) else "fp32"
    metric = with_precision(metric, precision)
    size = int(getattr(metric, "input_size", None) or getattr(metric, "image_size", None) or DEFAULT_SIZE)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=gen).to(device)
    with torch.no_grad():
        target = metric.embed(torch.rand(batch, 3, size, size, generator=gen).to(device))

    def forward() -> None:
        with torch.no_grad():
            metric.embed(x)

    def forward_backward() -> None:
        xg = x.clone().requires_grad_(True)
        metric.distance(metric.embed(xg), target).sum().backward()

    fwd = _median_seconds(forward, device, warmup, repeats)
    fwd_bwd = _median_seconds(forward_backward, device, warmup, repeats)
    return {
        "forward_images_per_s": batch / fwd,
        "forward_backward_images_per_s": batch / fwd_bwd,
        "input_size": size,
        "precision": used,
    }


def _device_name(device_name: str) -> str:
    from lipsim_bench.devices import resolve_device

    device = resolve_device(device_name)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _default_metrics() -> list[str]:
    from lipsim_bench.protocol.presets import get_preset

    return list(get_preset("paper").options["metrics"])


def _child(args: argparse.Namespace) -> int:
    """Print one metric's measurement as JSON on the last line; a user error as one line on stderr."""
    from lipsim_bench.errors import BenchError

    try:
        result = measure(args.metrics[0], args.device, args.batch, args.precision, args.warmup, args.repeats)
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 2
    except torch.cuda.OutOfMemoryError:
        print(f"out of GPU memory at batch {args.batch}; try a smaller --batch", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def _output_path(out: str | None) -> Path:
    from lipsim_bench.locations import results_root

    return Path(out) if out else results_root() / "device_profile.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics", nargs="*", help="registry names (default: the paper preset's metrics)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:K (default: cuda when available)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--precision", default="fp32", help="fp32, tf32, bf16 or fp16 (metrics without a Lipschitz bound)"
    )
    parser.add_argument(
        "--random-weights", action="store_true", help="build with random weights (same cost, no download)"
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="JSON file to write (default: results/device_profile.json)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--batch and --repeats must be >= 1 and --warmup >= 0")
    if args.random_weights:
        from lipsim_bench.run.plan import RANDOM_WEIGHTS_ENV

        os.environ[RANDOM_WEIGHTS_ENV] = "1"  # the children inherit it; build_metric reads it
    if args.child:
        return _child(args)

    from lipsim_bench.errors import BenchError
    from lipsim_bench.metrics.precision import check_precision

    try:
        check_precision(args.precision)
        device = _device_name(args.device)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = args.metrics or _default_metrics()
    print(
        f"device {device}, torch {torch.__version__}, batch {args.batch}, precision {args.precision}, "
        f"median of {args.repeats} after {args.warmup} warm-up, one process per metric"
        + (", random weights" if args.random_weights else "")
    )
    print(f"{'metric':<20} {'input':>5} {'precision':>9} {'forward img/s':>14} {'fwd+bwd img/s':>14}")
    measured: dict[str, dict[str, object]] = {}
    for name in names:
        command = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--batch",
            str(args.batch),
            "--precision",
            args.precision,
            "--warmup",
            str(args.warmup),
            "--repeats",
            str(args.repeats),
        ] + (["--device", args.device] if args.device else [])
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not result.stdout.strip():
            lines = result.stderr.strip().splitlines()
            print(f"{name:<20} failed: {lines[-1] if lines else f'exit code {result.returncode}'}", flush=True)
            continue
        row = json.loads(result.stdout.strip().splitlines()[-1])
        measured[name] = row
        print(
            f"{name:<20} {row['input_size']:>5} {row['precision']:>9} {row['forward_images_per_s']:>14.1f} "
            f"{row['forward_backward_images_per_s']:>14.1f}",
            flush=True,
        )
    if not measured:
        print("error: no metric could be measured; nothing written", file=sys.stderr)
        return 1
    out = _output_path(args.out)
    profile = {
        "format": FORMAT,
        "device": device,
        "torch": torch.__version__,
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "precision": args.precision,
        "batch": args.batch,
        "random_weights": bool(args.random_weights),
        "metrics": measured,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(profile, indent=2) + "\n")
    print(f"wrote {out} ({len(measured)} of {len(names)} metrics); `run_bench.py --dry-run` now uses it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
