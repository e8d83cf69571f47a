"""The official LipSim checkpoints: where they live, how to fetch them, and a strict loader.

The official code saves a ``DistributedDataParallel(wrapper(L2LipschitzNetwork))`` state dict, so
keys look like ``module.model.convs.3.kernel``; its ``base`` Sequential holds the *same* modules
again (``base.1.*`` = ``convs.*``, ``base.2.*`` = ``linear.*``), so every tensor appears twice.
The official loader is non-strict (silent mismatches); this one accounts for every key: it strips
the prefix, checks each ``base`` duplicate equals its twin, and loads strictly.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from lipsim_bench.locations import weights_root
from lipsim_bench.metrics.errors import MetricError, WeightsUnavailableError
from lipsim_bench.metrics.fingerprint import sha256_file
from lipsim_bench.metrics.weightfiles import torch_load

PREFIXES = ("module.", "model.")
BASE_ALIASES = {"base.1.": "convs.", "base.2.": "linear."}
WRAPPER_KEYS = ("model_state_dict", "state_dict", "model")


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One published LipSim checkpoint (teacher DreamSim), as listed in the official README."""

    variant: str
    filename: str
    drive_id: str
    description: str

    @property
    def url(self) -> str:
        # Drive's direct-download endpoint; confirm=t skips the virus-scan page of large files.
        return f"https://drive.usercontent.google.com/download?id={self.drive_id}&export=download&confirm=t"


OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    c.variant: c
    for c in (
        OfficialCheckpoint(
            "pretrained", "lipsim_pretrained.pth", "1Y39Wnpxq3ZS8JMRe6j-Yx7x3E_nardbv", "distilled from DreamSim only"
        ),
        OfficialCheckpoint(
            "margin0.2",
            "lipsim_margin0.2.pth",
            "1OHRP0uwFrRJ6zXsPrCUDxlTjALa_690c",
            "fine-tuned on NIGHT, hinge margin 0.2",
        ),
        OfficialCheckpoint(
            "margin0.5",
            "lipsim_margin0.5.pth",
            "11JoY5jrm4qmk0QmncQ5eVqXQpXQNLG1X",
            "fine-tuned on NIGHT, hinge margin 0.5",
        ),
    )
}


def weights_dir() -> Path:
    """``--weights-dir`` / ``$LIPSIM_BENCH_WEIGHTS_DIR``, else ``$LIPSIM_BENCH_CACHE/weights`` (see lipsim_bench.locations)."""
    return weights_root()


def checkpoint_path(variant: str) -> Path:
    return weights_dir() / OFFICIAL_CHECKPOINTS[variant].filename


def how_to_get(variant: str) -> str:
    ckpt = OFFICIAL_CHECKPOINTS[variant]
    return (
        f"download {ckpt.url} (Google Drive file {ckpt.drive_id}) to {checkpoint_path(variant)}, "
        f"or run `python run_bench.py fetch lipsim-{variant}` on a machine with network "
        "(or pass --weights-dir DIR / set LIPSIM_BENCH_WEIGHTS_DIR to use another folder)"
    )


def download(url: str, dest: Path) -> Path:
    """Fetch ``url`` to ``dest`` atomically; an HTML answer (Drive's quota/consent page) is an error."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(response, out)
        if _is_html(Path(tmp)):
            raise WeightsUnavailableError(
                f"{url} returned a web page, not a checkpoint (Google Drive does this when a file is over its "
                f"download quota); download it in a browser and save it as {dest}"
            )
        os.replace(tmp, dest)
    except OSError as exc:
        raise WeightsUnavailableError(f"could not download {url} ({exc}); save the file as {dest} by hand") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def _is_html(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(512).lstrip().lower().startswith((b"<!doctype html", b"<html"))


def ensure_checkpoint(variant: str) -> Path:
    """The local file of an official variant, downloading it when missing."""
    path = checkpoint_path(variant)
    if not path.is_file():
        print(f"downloading LipSim {variant} to {path}", file=sys.stderr)
        download(OFFICIAL_CHECKPOINTS[variant].url, path)
    return path


def _unwrap(obj: object, path: Path) -> dict[str, Tensor]:
    for key in WRAPPER_KEYS:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return _unwrap(obj[key], path)
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise MetricError(f"{path} holds no state dict (expected tensors, or one under {', '.join(WRAPPER_KEYS)})")
    return obj


def official_to_local(state: dict[str, Tensor], path: Path | str = "checkpoint") -> dict[str, Tensor]:
    """Official keys -> this project's: strip ``module.``/``model.``, fold the ``base`` duplicates."""
    stripped: dict[str, Tensor] = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        stripped[key] = value
    local: dict[str, Tensor] = {}
    duplicates: dict[str, Tensor] = {}
    for key, value in stripped.items():
        alias = next((a for a in BASE_ALIASES if key.startswith(a)), None)
        if alias is None:
            local[key] = value
        else:
            duplicates[BASE_ALIASES[alias] + key[len(alias) :]] = value
    for key, value in duplicates.items():
        twin = local.get(key)
        if twin is None:
            local[key] = value  # a checkpoint saved from ``base`` only
        elif twin.shape != value.shape or not torch.equal(twin, value):
            raise MetricError(f"{path}: base duplicate of {key} differs from it; the checkpoint is inconsistent")
    return local


def refetch_advice(path: Path) -> str:
    """How to replace a damaged official checkpoint: delete it, then fetch its variant again."""
    variant = next((v for v, c in OFFICIAL_CHECKPOINTS.items() if c.filename == path.name), None)
    fetch = f"`python run_bench.py fetch lipsim-{variant}`" if variant else "the download in the README"
    return f"delete it and re-download it ({fetch})"


def load_official(network: nn.Module, path: Path, expected_sha256: str | None = None) -> str:
    """Load an official checkpoint into ``network`` strictly; return the file's sha256.

    ``torch.load(weights_only=True)``: a checkpoint cannot run code. With ``expected_sha256`` a
    different file is refused, so a run can pin the exact weights it reports.
    """
    if not path.is_file():
        raise WeightsUnavailableError(f"LipSim checkpoint not found: {path}")
    fix = refetch_advice(path)
    digest = sha256_file(path)
    if expected_sha256 and digest != expected_sha256.lower():
        raise MetricError(f"{path} has sha256 {digest}, not the pinned {expected_sha256}; {fix}, or update the pin")
    if _is_html(path):
        raise MetricError(f"{path} is a web page, not a checkpoint (a failed Google Drive download); {fix}")
    raw = torch_load(path, fix)
    local = official_to_local(_unwrap(raw, path), path)
    expected = network.state_dict()
    missing = sorted(set(expected) - set(local))
    unexpected = sorted(set(local) - set(expected))
    if missing or unexpected:
        raise MetricError(
            f"{path} does not match the LipSim network: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    wrong = [k for k in expected if expected[k].shape != local[k].shape]
    if wrong:
        k = wrong[0]
        raise MetricError(
            f"{path}: {k} has shape {tuple(local[k].shape)}, the network expects {tuple(expected[k].shape)}"
        )
    network.load_state_dict(local, strict=True)
    print(f"loaded {path} (sha256 {digest})", file=sys.stderr)
    return digest


if __name__ == "__main__":  # python -m lipsim_bench.metrics.lipsim.checkpoint [variant ...]
    for name in sys.argv[1:] or list(OFFICIAL_CHECKPOINTS):
        file = ensure_checkpoint(name)
        print(f"{name}: {file} sha256 {sha256_file(file)}")
