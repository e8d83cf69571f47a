"""The default run (``python run_bench.py``) timed at several commits, side by side, alternating.

Usage: python benchmarks/default_run_ab.py OLD_COMMIT [OTHER ...] [--rounds 2] [--args "..."]

Each commit is checked out into a temporary git worktree (the working tree itself counts as
``HEAD+work``) and its default run goes to a fresh folder. Runs alternate (A B C A B C ...) so a
shared, noisy machine slows every commit alike; the table prints wall seconds per round, the median,
and each median as a ratio to the first commit's. The scores of each commit's last run are printed
too, so a speed-up that changed the numbers is seen at once.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = "work"  # the working tree as it is, uncommitted changes included


def checkout(commit: str, into: Path) -> Path:
    if commit == WORK:
        return ROOT
    path = into / commit.replace("/", "_")
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-f", str(path), commit], cwd=ROOT, check=True, capture_output=True
    )
    return path


def import_path(tree: Path) -> str:
    """PYTHONPATH that makes ``tree``'s own code the one imported.

    Since the import name ``lipsim_bench`` maps folders (bench/ = lipsim_bench, metrics/ and attacks/ below it),
    ``import lipsim_bench`` finds the editable install, i.e. the main working tree, whatever the cwd. A commit's
    worktree (temporary, ours) therefore gets links bench/metrics -> ../metrics and bench/attacks -> ../attacks and a
    folder holding lipsim_bench -> bench, placed first on the path: the path finder runs before the editable one.
    """
    if tree == ROOT or not (tree / "bench").is_dir() or "lipsim_bench" not in (tree / "pyproject.toml").read_text():
        return str(tree)  # the working tree is the editable install; older commits import bench/ from the cwd
    for name in ("metrics", "attacks"):
        link = tree / "bench" / name
        if not link.exists():
            link.symlink_to(Path("..") / name)
    shim = tree.parent / f"{tree.name}-import"
    shim.mkdir(exist_ok=True)
    if not (shim / "lipsim_bench").exists():
        (shim / "lipsim_bench").symlink_to(tree / "bench")
    return os.pathsep.join([str(shim), str(tree)])


def timed_run(tree: Path, out: Path, extra: list[str]) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": import_path(tree)}
    env.pop("LIPSIM_BENCH_VERIFY", None)  # the user's default run, not verification mode
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "run_bench.py", "--out", str(out), *extra],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"run at {tree} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("commits", nargs="+", help=f"commits to compare; '{WORK}' is the working tree")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--args", default="", help="extra run_bench.py arguments (default: none: the default run)")
    args = parser.parse_args()
    commits = list(dict.fromkeys(args.commits))
    extra = shlex.split(args.args)
    with tempfile.TemporaryDirectory(prefix="ab-") as tmp:
        tmpdir = Path(tmp)
        trees = {c: checkout(c, tmpdir) for c in commits}
        seconds: dict[str, list[float]] = {c: [] for c in commits}
        try:
            for r in range(args.rounds):
                for c in commits:
                    seconds[c].append(timed_run(trees[c], tmpdir / f"out-{c}-{r}", extra))
                    print(f"round {r + 1}: {c:<12} {seconds[c][-1]:7.1f} s", flush=True)
            base = statistics.median(seconds[commits[0]])
            print(
                f"\n{'commit':<12} "
                + " ".join(f"{'run ' + str(i + 1):>8}" for i in range(args.rounds))
                + f" {'median':>8} {'vs ' + commits[0][:8]:>12}"
            )
            for c in commits:
                median = statistics.median(seconds[c])
                print(
                    f"{c:<12} " + " ".join(f"{s:8.1f}" for s in seconds[c]) + f" {median:8.1f} {base / median:11.2f}x"
                )
            for c in commits:
                scores = tmpdir / f"out-{c}-{args.rounds - 1}" / "scores.md"
                print(f"\n## scores at {c}\n" + (scores.read_text() if scores.exists() else "(no scores.md)"))
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
