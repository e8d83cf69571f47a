"""What a run needs from the network, fetched before any computation (``--download``, the presets).

Each metric declares how to fetch its weights (``register_metric(..., fetch=...)``) and each dataset
family how to fetch its files (``register_dataset(..., fetch=...)``); this module only asks them.
Offline, a missing file is one line naming it and the command that gets it elsewhere.
"""

from __future__ import annotations

from lipsim_bench.datasets.base import parse_dataset_arg
from lipsim_bench.errors import BenchError
from lipsim_bench.extras import require
from lipsim_bench.metrics import get_metric_spec


def ensure_weights(name: str) -> None:
    """Download the weights of metric ``name`` unless they are already here."""
    spec = get_metric_spec(name)
    for module in spec.requires:  # the library first: fetching needs it, and so does running
        require(module, f"metric {name!r}")
    if spec.is_available():
        return
    if spec.fetch is None:
        raise BenchError(
            f"weights for metric {name!r} are missing and lipsim-bench cannot download them: {spec.how_to_get}"
        )
    print(f"downloading weights of {name} ...", flush=True)
    try:
        spec.fetch()
    except Exception as exc:  # any library's network error: one line, with the way out
        raise BenchError(
            f"downloading the weights of {name!r} failed ({type(exc).__name__}: {exc}); {spec.how_to_get}"
        ) from None
    if not spec.is_available():
        raise BenchError(
            f"weights of {name!r} were downloaded but are still not found where lipsim-bench looks; {spec.how_to_get}"
        )


def ensure_dataset(dataset: str, split: str | None, n: int | None) -> None:
    """Fetch the files of ``dataset`` (``NAME[:ROOT]``) that ``split`` / ``n`` need, if its family can."""
    family, root = parse_dataset_arg(dataset)
    if family.fetch is not None:
        family.fetch(root, split or family.default_split, n)
