"""Seconds of the smoothing preset's noise draws: one randn per sample (before) against one call per batch and
the cache of standard normals (now), in one process, alternating, with every draw checked bit-identical.

Usage: python benchmarks/smoothing_noise.py [--triplets 5] [--units 16] [--rounds 3] [--threads 2]

The pattern is a run's: ``--units`` units (the smoothing preset: 4 metrics x (3 sigmas of smoothing + 1 of
smoothing-embed) = 16) each visit every triplet in turn and draw its selection (n0 100) and estimation (n 1000)
noise at 3x64x64, 200 per batch (smoothing-embed: estimation only). Three ways:

- ``per-sample``: the code before (a generator per triplet and phase, one randn(C, H, W) per sample, stacked);
- ``one call``: noisy_copies with the cache off (NOISE_CACHE_BYTES = 0);
- ``cache, 1 of 5 fit``: noisy_copies with room for the noise of a fifth of the triplets, the share of the
  smoothing preset's 100 triplets (--every 3) that the default 1 GiB holds (19 of 100);
- ``cache, all fit``: the default bound, which holds every triplet of a run up to 19 triplets (--n 57 --every 3).

Only the draws are timed (the metric's forward passes are left out): the figure is what a run saves at most.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lipsim_bench.evaluations import smoothing_noise
from lipsim_bench.evaluations.smoothing_noise import clear_noise_cache, noisy_copies, triplet_seed

SHAPE, N0, N, BATCH = (3, 64, 64), 100, 1000, 200


def per_sample_copies(image: torch.Tensor, count: int, sigma: float, seed: int, batch: int):
    """noisy_copies as it was before the one-call draw and the cache (the reference stream)."""
    gen = torch.Generator(device=image.device).manual_seed(seed)
    done = 0
    while done < count:
        size = min(batch, count - done)
        noise = torch.stack(
            [torch.randn(image.shape, generator=gen, device=image.device, dtype=image.dtype) for _ in range(size)]
        )
        yield image.unsqueeze(0) + sigma * noise
        done += size


def draws(triplets: int, units: int):
    """(unit, triplet, phase, count, sigma) in a run's order: unit by unit, every triplet in turn."""
    sigmas = (0.12, 0.25, 0.5, 0.25)  # smoothing at 3 sigmas, then smoothing-embed
    for unit in range(units):
        embed = unit % 4 == 3
        for t in range(triplets):
            phases = (("estimate", N),) if embed else (("select", N0), ("estimate", N))
            for phase, count in phases:
                yield t, triplet_seed(0, t, phase), count, sigmas[unit % 4]


def one_pass(copies, images, triplets: int, units: int, checksum: list[float] | None) -> float:
    started = time.perf_counter()
    total = 0.0
    for t, seed, count, sigma in draws(triplets, units):
        for x in copies(images[t], count, sigma, seed, BATCH):
            if checksum is not None:
                checksum.append(float(x.double().sum()))
            total += float(x[0, 0, 0, 0])  # touch the output, as a forward pass would
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triplets", type=int, default=5)
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = torch.rand((args.triplets, *SHAPE), generator=torch.Generator().manual_seed(0))
    per_triplet = (N0 + N) * images[0].numel() * images.element_size()
    default_bound = smoothing_noise.NOISE_CACHE_BYTES
    ways = {
        "per-sample": (per_sample_copies, None),
        "one call": (noisy_copies, 0),
        f"cache, 1 of {args.triplets} fit": (noisy_copies, per_triplet),
        "cache, all fit": (noisy_copies, default_bound),
    }
    reference: list[float] = []
    one_pass(per_sample_copies, images, args.triplets, 1, reference)
    for name, (copies, bound) in ways.items():  # every way draws the same numbers
        if bound is not None:
            smoothing_noise.NOISE_CACHE_BYTES = bound
        clear_noise_cache()
        seen: list[float] = []
        one_pass(copies, images, args.triplets, 1, seen)
        assert seen == reference, f"{name} draws other numbers"
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, (copies, bound) in ways.items():
            if bound is not None:
                smoothing_noise.NOISE_CACHE_BYTES = bound
            clear_noise_cache()
            seconds[name].append(one_pass(copies, images, args.triplets, args.units, None))
    smoothing_noise.NOISE_CACHE_BYTES = default_bound
    clear_noise_cache()
    base = statistics.median(seconds["per-sample"])
    print(
        f"noise of {args.units} units x {args.triplets} triplets (n0 {N0} + n {N} at {'x'.join(map(str, SHAPE))}), "
        f"{args.threads} threads, rounds alternating; every way bit-identical to per-sample draws"
    )
    print(
        f"{'way':<22} "
        + " ".join(f"{'round ' + str(i + 1):>8}" for i in range(args.rounds))
        + f" {'median':>8} {'vs per-sample':>14}"
    )
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:<22} " + " ".join(f"{v:8.2f}" for v in values) + f" {median:8.2f} {median / base:13.2f}x")


if __name__ == "__main__":
    main()
