"""The options of the gallery attacks (recall-apgd, stability-apgd, knn-apgd) and what one batch's attack aims at."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class GalleryAPGDOptions:
    """The APGD options that matter here (the run's seed is the attack's seed; norm and eps are the threat's).

    ``steps`` is sized for the bundled run (every metric in 3 minutes on 2 cores); raise it for a published number.
    """

    steps: int = 10
    restarts: int = 1
    loss: str = "ce"
    rho: float = 0.75
    momentum: float = 0.75
    early_stop: bool = True  # a fooled query leaves the batch: the same successes, less work
    carry: bool = True  # a success at the next smaller radius of the norm counts here, not searched again
    skip_proven: bool = True  # a query certified beyond the ball (the project's own bound) is not attacked


#: The options passed to APGD (the others are the benchmark's).
APGD_OPTIONS = ("steps", "restarts", "loss", "rho", "momentum", "early_stop")


@dataclass(frozen=True)
class KnnAPGDOptions(GalleryAPGDOptions):
    k: int = 1  # neighbours in the vote (the rows' decision; the attack follows the 1-NN class logits)


@dataclass
class Target:
    """What one batch's attack aims at: per-query sets, labels, who is attacked, and the certificate's sides."""

    sets: Tensor  # (N, G) long: each gallery item's set (GalleryClassifier's members)
    n_sets: int
    labels: Tensor  # (N,) long
    eligible: Tensor  # (N,) bool: correct now and breakable (some other set has members)
    winners: Tensor | None  # (N, G) bool, or None: no certificate for this decision
    losers: Tensor | None
