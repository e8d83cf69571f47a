"""``apgd-margin``: APGD on the margin loss ``z_other - z_true``, the two-logit analogue of AutoAttack's DLR.

DLR needs at least three logits; with the two logits of a 2AFC decision its scale-free idea reduces to the plain
margin, which is Croce et al.'s choice for perceptual metrics. On two logits cross-entropy is ``softplus(margin)``,
a monotone function of it, and APGD steps along the gradient's direction only (its l2 norm or sign), so the two
losses walk the same path wherever cross-entropy's gradient is representable; the margin's does not vanish where
cross-entropy saturates (a decided triplet far from the boundary, ``softplus'`` underflowing in float32), which is
the failure an ensemble member must cover. Registered as its own attack so one run holds both columns.
"""

from __future__ import annotations

from lipsim_bench.attacks.apgd import APGD
from lipsim_bench.attacks.base import Norm
from lipsim_bench.attacks.registry import register_attack


@register_attack
class APGDMargin(APGD):
    """APGD with the margin loss (AutoAttack's APGD, the two-logit analogue of APGD-DLR)."""

    name = "apgd-margin"

    def __init__(
        self,
        norm: Norm,
        eps: float,
        steps: int = 100,
        restarts: int = 1,
        loss: str = "margin",
        rho: float = 0.75,
        seed: int = 0,
        momentum: float = 0.75,
        early_stop: bool = False,
    ) -> None:
        super().__init__(norm, eps, steps, restarts, loss, rho, seed, momentum, early_stop)
