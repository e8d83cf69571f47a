"""Seconds of the k-nearest gallery search, brute force in torch against FAISS's exact flat index, per gallery size,
with both results checked identical (same indices up to ties); prints where FAISS takes over.

Usage: python benchmarks/retrieval_search.py [--sizes 1000,10000,100000,1000000] [--dim 512] [--queries 100]
       [--k 5] [--kind cosine] [--rounds 3] [--threads 2]

Each call is :func:`lipsim_bench.evaluations.gallery_search.nearest` end to end (FAISS: copying and normalising
the gallery and building the index included, as a run pays them once per metric and batch of queries), the median
of ``--rounds`` (more for small galleries, up to 30), the two backends alternating. Random Gaussian embeddings (float32); 1e6 x 512 is 2 GB, and FAISS
holds a copy of it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch

from lipsim_bench.evaluations.gallery_search import faiss_available, nearest


def timed(call) -> tuple[float, tuple[torch.Tensor, torch.Tensor]]:
    started = time.perf_counter()
    out = call()
    return time.perf_counter() - started, out


def same_up_to_ties(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> bool:
    """Identical indices, or the differing places hold equal distances (to float32 rounding)."""
    (da, ia), (db, ib) = a, b
    differ = ia != ib
    return bool(torch.allclose(da, db, rtol=1e-5, atol=1e-6)) and bool(
        (~differ | ((da - db).abs() <= 1e-5 * da.abs().clamp_min(1e-6))).all()
    )


def rounds_for(size: int, rounds: int) -> int:
    """More rounds for small galleries (milliseconds, where a shared machine's noise dominates), up to 30."""
    return max(rounds, min(30, 100_000 // size))


def verdict(faster: list[tuple[int, bool]]) -> str:
    """The smallest size from which FAISS was faster at every larger size measured, or why there is none."""
    takes_over = None
    for size, wins in faster:
        takes_over = (takes_over or size) if wins else None
    if takes_over is not None:
        return f"FAISS is faster from gallery size {takes_over} on"
    only = [str(size) for size, wins in faster if wins]
    return "FAISS is not faster from any size on" + (f" (faster only at {', '.join(only)})" if only else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--kind", default="cosine", choices=("cosine", "l2"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not faiss_available():
        raise SystemExit("FAISS is not installed: pip install 'lipsim-bench[faiss]'")
    import faiss

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    queries = torch.randn(args.queries, args.dim, generator=gen)
    print(
        f"{args.queries} queries, dim {args.dim}, k {args.k}, {args.kind}, {args.threads} threads, median of {args.rounds} rounds or more"
    )
    print(f"{'gallery':>10} {'torch s':>9} {'faiss s':>9} {'faiss/torch':>12}  same")
    faster = []
    for size in (int(s) for s in args.sizes.split(",")):
        gallery = torch.randn(size, args.dim, generator=gen)
        times: dict[str, list[float]] = {"torch": [], "faiss": []}
        results = {}
        for _ in range(rounds_for(size, args.rounds)):
            for backend in ("torch", "faiss"):
                call = partial(nearest, queries, gallery, args.k, args.kind, backend)
                seconds, results[backend] = timed(call)
                times[backend].append(seconds)
        t, f = statistics.median(times["torch"]), statistics.median(times["faiss"])
        same = same_up_to_ties(results["torch"], results["faiss"])
        print(f"{size:>10} {t:>9.4f} {f:>9.4f} {f / t:>12.2f}  {'yes' if same else 'NO'}")
        faster.append((size, f < t))
    print(verdict(faster))


if __name__ == "__main__":
    main()
