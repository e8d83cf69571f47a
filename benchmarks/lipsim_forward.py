"""Forward throughput of a LipSim preset on CPU, with and without the eval-mode weight cache.

    python benchmarks/lipsim_forward.py                 # small preset, batch 8, 2 threads
    python benchmarks/lipsim_forward.py --preset tiny --batch 64

Prints images/s (median over repeats, after a warmup) for both modes and the max abs difference of the
outputs, which must stay below 1e-5 (the cache changes nothing but when T is computed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from lipsim_bench.metrics.lipsim import create_lipsim_network, set_cache_enabled


def time_forward(nets: dict[str, torch.nn.Module], x: torch.Tensor, warmup: int, repeats: int):
    """Median seconds per forward for each net (after ``warmup`` untimed calls) and its last output.

    The nets are timed in alternation, repeat by repeat, so that load from other processes hits both alike.
    """
    times: dict[str, list[float]] = {name: [] for name in nets}
    outs: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, net in nets.items():
            for _ in range(warmup):
                outs[name] = net(x)
        for _ in range(repeats):
            for name, net in nets.items():
                start = time.perf_counter()
                outs[name] = net(x)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, outs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net = create_lipsim_network(args.preset).eval()
    x = torch.rand(args.batch, 3, net.input_size, net.input_size)
    print(
        f"preset={args.preset} params={sum(p.numel() for p in net.parameters()):,} batch={args.batch} "
        f"threads={torch.get_num_threads()} warmup={args.warmup} repeats={args.repeats}"
    )
    # Other processes on a 2-core machine change these figures a lot: print the conditions with them.
    print(f"load average {os.getloadavg()[0]:.2f}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")

    plain = create_lipsim_network(args.preset).eval()
    plain.load_state_dict(net.state_dict())
    set_cache_enabled(plain, False)
    medians, outs = time_forward({"uncached": plain, "cached": net}, x, args.warmup, args.repeats)
    t_plain, t_cached = medians["uncached"], medians["cached"]
    out_plain, out_cached = outs["uncached"], outs["cached"]

    diff = (out_plain - out_cached).abs().max().item()
    print(f"uncached: {t_plain:.3f} s/batch  {args.batch / t_plain:8.2f} images/s")
    print(f"cached:   {t_cached:.3f} s/batch  {args.batch / t_cached:8.2f} images/s")
    print(f"speed-up: x{t_plain / t_cached:.2f}  (load average now {os.getloadavg()[0]:.2f})")
    print(f"max |cached - uncached| = {diff:.3e}  (|output| max {out_plain.abs().max().item():.3e})")
    if diff > 1e-5:
        raise SystemExit("cached and uncached outputs disagree")


if __name__ == "__main__":
    main()
