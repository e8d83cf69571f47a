"""LipSim as a perceptual metric: a 1-Lipschitz network, cosine distance, a proven Lipschitz bound.

``embed`` returns the raw network output phi(x) (the paper's projection onto the unit ball does not
change cosine distances, and the certificate needs phi itself). ``lipschitz`` is the sound network
bound of :func:`network_lipschitz_bound` (float64, per-layer product), recomputed whenever a weight
changes; ``lipschitz_for`` multiplies in the exact norm of the resize for other input sizes.
"""

from __future__ import annotations

from torch import Tensor

from lipsim_bench.metrics.base import PerceptualMetric
from lipsim_bench.metrics.conventions import THIS_PROJECT, Conventions, resize_text
from lipsim_bench.metrics.fingerprint import file_fingerprint
from lipsim_bench.metrics.lipsim.checkpoint import (
    OFFICIAL_CHECKPOINTS,
    checkpoint_path,
    ensure_checkpoint,
    how_to_get,
    load_official,
)
from lipsim_bench.metrics.lipsim.lipschitz import network_lipschitz_bound
from lipsim_bench.metrics.lipsim.network import LipSimNetwork, create_lipsim_network, get_preset
from lipsim_bench.metrics.registry import register_metric
from lipsim_bench.metrics.resize import resize_lipschitz, resize_to
from lipsim_bench.metrics.weights import bundled_metric_options, load_bundled


class LipSim(PerceptualMetric):
    """A LipSim network of any preset as a metric (distance 1 - cos).

    Its bound is computed from the weights on every change, so the project proves it
    (``lipsim_bench.metrics.base._PROVEN_BY_PROJECT``).
    """

    distance_kind = "cosine"

    def __init__(self, preset: str = "tiny", network: LipSimNetwork | None = None) -> None:
        super().__init__()
        self.network = network or create_lipsim_network(preset)
        self.input_size = self.network.input_size
        self.embed_dim = self.network.embed_dim
        self._bound_key: tuple[int, ...] | None = None
        self._bound: float = float("nan")

    def embed(self, x: Tensor) -> Tensor:
        return self.network(resize_to(x, self.input_size))

    @property  # type: ignore[override]
    def lipschitz(self) -> float:
        """Sound l2 bound of phi on native-size inputs, cached until a parameter changes."""
        key = tuple(p._version for p in self.parameters()) + tuple(p.data_ptr() for p in self.parameters())
        if key != self._bound_key:
            self._bound = network_lipschitz_bound(self.network)
            self._bound_key = key
        return self._bound

    def lipschitz_for(self, height: int, width: int) -> float:
        return self.lipschitz * resize_lipschitz((height, width), self.input_size)


def lipsim_conventions(preset: str, mirrors: str) -> Conventions:
    """What :class:`LipSim` does for ``preset``: bilinear resize to its size, the network's own shift (no mean/std),
    1 - cos of phi."""
    config = get_preset(preset)
    shift = f"x {'-' if config.shift < 0 else '+'} {abs(config.shift):g} (the network's Shift layer)"
    return Conventions(
        input=f"{shift if config.shift else 'identity'}, no mean/std",
        resize=resize_text(config.input_size, "bilinear", antialias=False),
        distance=f"1 - cos of the raw {config.embed_dim}-d network output phi (no ball projection)",
        mirrors=mirrors,
    )


#: The official checkpoints' source: a GitHub repository, no package release.
OFFICIAL_SOURCE = "SaraGhazanfari/lipsim L2LipschitzNetwork (paper's small config), checkpoint {filename}"


@register_metric(
    "lipsim-tiny",
    description="tiny 1-Lipschitz LipSim distilled from convsim-tiny, hinge fine-tuned (certifiable)",
    **bundled_metric_options("lipsim-tiny"),
    conventions=lipsim_conventions("tiny", THIS_PROJECT),
)
def lipsim_tiny() -> LipSim:
    return load_bundled(LipSim("tiny"), "lipsim-tiny")


@register_metric(
    "lipsim-tiny-stlpips",
    description="tiny 1-Lipschitz LipSim distilled from ST-LPIPS alex (published weights), hinge fine-tuned (certifiable)",
    **bundled_metric_options("lipsim-tiny-stlpips"),
    conventions=lipsim_conventions("tiny", THIS_PROJECT),
)
def lipsim_tiny_stlpips() -> LipSim:
    return load_bundled(LipSim("tiny"), "lipsim-tiny-stlpips")


def _official_factory(variant: str):
    def build(sha256: str | None = None) -> LipSim:
        metric = LipSim("small")
        metric.weights_sha256 = load_official(metric.network, checkpoint_path(variant), expected_sha256=sha256)
        return metric

    build.__doc__ = f"The paper's LipSim ({OFFICIAL_CHECKPOINTS[variant].description}), 224x224, 1792-d."
    return build


for _variant, _ckpt in OFFICIAL_CHECKPOINTS.items():
    # bind the variant now: the lambdas run later, at listing or creation time
    register_metric(
        f"lipsim-{_variant}",
        description=f"LipSim (official, {_ckpt.description}); certifiable",
        weights=f"official checkpoint {_ckpt.filename}",
        available=lambda v=_variant: checkpoint_path(v).is_file(),
        how_to_get=how_to_get(_variant),
        fingerprint=lambda v=_variant: file_fingerprint(checkpoint_path(v)),
        fetch=lambda v=_variant: ensure_checkpoint(v),
        conventions=lipsim_conventions("small", OFFICIAL_SOURCE.format(filename=_ckpt.filename)),
    )(_official_factory(_variant))

register_metric(
    "lipsim",
    description="alias of lipsim-margin0.5, the checkpoint of the paper's robustness table",
    weights=f"official checkpoint {OFFICIAL_CHECKPOINTS['margin0.5'].filename}",
    available=lambda: checkpoint_path("margin0.5").is_file(),
    how_to_get=how_to_get("margin0.5"),
    fingerprint=lambda: file_fingerprint(checkpoint_path("margin0.5")),
    fetch=lambda: ensure_checkpoint("margin0.5"),
    conventions=lipsim_conventions(
        "small", OFFICIAL_SOURCE.format(filename=OFFICIAL_CHECKPOINTS["margin0.5"].filename)
    ),
)(_official_factory("margin0.5"))
