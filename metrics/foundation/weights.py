"""Where foundation-model weights live, and probes that find them on disk without ever downloading.

Every adapter in :mod:`lipsim_bench.metrics.foundation` resolves its files to local paths first and then loads
from those paths, so building a metric never touches the network (no hub request, no retries).

Search order (the first place holding all of a metric's files wins):

1. ``$LIPSIM_BENCH_WEIGHTS_DIR`` (the CLI's ``--weights-dir``), laid out like the standard caches::

       <dir>/huggingface/hub/models--<org>--<name>/...   Hugging Face hub cache (= HF_HOME=<dir>/huggingface)
       <dir>/torch/hub/checkpoints/<file>.pth            torch.hub checkpoints   (= TORCH_HOME=<dir>/torch)
       <dir>/dreamsim/                                   DreamSim's cache_dir

2. the standard caches: ``$HF_HUB_CACHE`` or ``$HF_HOME/hub`` (default ``~/.cache/huggingface/hub``);
   ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``); DreamSim: ``$XDG_CACHE_HOME/dreamsim``
   (default ``~/.cache/dreamsim``; DreamSim's own default, ``./models``, depends on the working directory).

To fill a weights dir, run the ``how_to_get`` command of a metric on a machine with network, with
``HF_HOME=<dir>/huggingface TORCH_HOME=<dir>/torch`` (DreamSim: ``cache_dir=<dir>/dreamsim``), or
simply ``python -m lipsim_bench.metrics.foundation.weights fetch <metric> [--dir <dir>]`` which does exactly that;
then copy the folder to the offline machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lipsim_bench.locations import WEIGHTS_ENV, user_weights_dir
from lipsim_bench.metrics.fingerprint import cache_file_fingerprint  # noqa: F401  (re-exported for the adapters)

ENV_WEIGHTS_DIR = WEIGHTS_ENV

#: Weight file names Hugging Face repos use, in the order open_clip / timm prefer them.
OPEN_CLIP_HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
TIMM_HF_FILES = ("model.safetensors", "pytorch_model.bin")


def weights_dir() -> Path | None:
    """The user's weights folder (``--weights-dir`` / ``$LIPSIM_BENCH_WEIGHTS_DIR``), or None."""
    return user_weights_dir()


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()


def default_hf_cache() -> Path:
    """The Hugging Face hub cache the libraries use by default (honours HF_HUB_CACHE / HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME") or _cache_home() / "huggingface").expanduser() / "hub"


def default_torch_hub() -> Path:
    """torch.hub's directory (honours torch.hub.set_dir, TORCH_HOME, XDG_CACHE_HOME)."""
    import torch.hub

    return Path(torch.hub.get_dir()).expanduser()


def default_dreamsim_cache() -> Path:
    return _cache_home() / "dreamsim"


def hf_caches() -> list[Path]:
    root = weights_dir()
    return ([root / "huggingface" / "hub"] if root else []) + [default_hf_cache()]


def torch_hubs() -> list[Path]:
    root = weights_dir()
    return ([root / "torch" / "hub"] if root else []) + [default_torch_hub()]


def dreamsim_caches() -> list[Path]:
    root = weights_dir()
    return ([root / "dreamsim"] if root else []) + [default_dreamsim_cache()]


def how_to_get(metric: str, what: str) -> str:
    """The one-line ``how_to_get`` of a metric: the fetch command, what it runs, where files land."""
    return (
        f"run `python run_bench.py fetch {metric}` ({what}; files land in the standard caches: $HF_HOME/hub, "
        f"$TORCH_HOME/hub, ~/.cache/dreamsim), or on a machine with network "
        f"`python -m lipsim_bench.metrics.foundation.weights fetch {metric} --dir DIR`, copy DIR here and pass --weights-dir DIR"
    )


# --------------------------------------------------------------------------- Hugging Face hub cache


def find_hf_file(repo_id: str, filenames: Sequence[str]) -> Path | None:
    """Local path of the first of ``filenames`` cached for ``repo_id`` (revision main); never downloads."""
    from huggingface_hub import try_to_load_from_cache

    for cache in hf_caches():
        if not cache.is_dir():
            continue
        for filename in filenames:
            path = try_to_load_from_cache(repo_id, filename, cache_dir=str(cache))
            if isinstance(path, str) and os.path.isfile(path):
                return Path(path)
    return None


def find_hf_snapshot(repo_id: str, required: Sequence[str], any_of: Sequence[str]) -> Path | None:
    """Snapshot folder of ``repo_id`` holding every file of ``required`` and one of ``any_of``."""
    from huggingface_hub import try_to_load_from_cache

    for cache in hf_caches():
        if not cache.is_dir():
            continue
        paths = [try_to_load_from_cache(repo_id, f, cache_dir=str(cache)) for f in required]
        if not all(isinstance(p, str) and os.path.isfile(p) for p in paths):
            continue
        folder = Path(paths[0]).parent
        if any((folder / f).is_file() for f in any_of):
            return folder
    return None


# --------------------------------------------------------------------------- torch.hub checkpoints


def find_torch_checkpoint(filename: str, extra_hubs: Sequence[Path] = ()) -> Path | None:
    """``<hub>/checkpoints/<filename>`` in the weights dir, the torch hub dir, or ``extra_hubs``."""
    for hub in [*torch_hubs(), *extra_hubs]:
        path = hub / "checkpoints" / filename
        if path.is_file():
            return path
    return None


@contextmanager
def torch_hub_dir(path: str | os.PathLike[str]) -> Iterator[None]:
    """Point torch.hub at ``path`` for the duration of the block, then restore it exactly.

    Some libraries (DreamSim) call ``torch.hub.set_dir`` themselves, which changes the hub dir of
    the whole process; running them inside this block undoes that too.
    """
    import torch.hub

    previous = getattr(torch.hub, "_hub_dir", None)  # None means "derived from TORCH_HOME"
    torch.hub.set_dir(str(path))
    try:
        yield
    finally:
        torch.hub._hub_dir = previous  # type: ignore[attr-defined]


@contextmanager
def preserve_torch_hub_dir() -> Iterator[None]:
    """Restore torch.hub's directory after the block, whatever the code inside set it to."""
    import torch.hub

    previous = getattr(torch.hub, "_hub_dir", None)
    try:
        yield
    finally:
        torch.hub._hub_dir = previous  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- fetch (needs network)


def _fetch(name: str, root: Path | None) -> None:
    """Download what metric ``name`` needs into ``root`` (or the default caches). Network required."""
    if root is not None:
        os.environ[ENV_WEIGHTS_DIR] = str(root)
        os.environ["HF_HOME"] = str(root / "huggingface")
        os.environ["TORCH_HOME"] = str(root / "torch")
    os.environ.pop("HF_HUB_OFFLINE", None)
    from lipsim_bench.metrics.registry import get_metric_spec, list_metrics

    fetchable = [n for n in list_metrics() if get_metric_spec(n).fetch is not None]
    if name not in fetchable:
        raise SystemExit(f"no download for metric {name!r}; metrics with one: {', '.join(fetchable)}")
    get_metric_spec(name).fetch()


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Download foundation-metric weights (needs network).")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download the weights of one or more metrics")
    fetch.add_argument("metrics", nargs="+")
    fetch.add_argument(
        "--dir",
        type=Path,
        default=weights_dir(),
        help=f"weights dir (default: ${ENV_WEIGHTS_DIR} or the standard caches)",
    )
    args = parser.parse_args(argv)
    for name in args.metrics:
        _fetch(name, args.dir)
        print(f"{name}: done")


if __name__ == "__main__":
    main()
