"""The adversarial examples an attack unit keeps (``--save-adversarial``), as plain tensors.

Stored beside the unit's record as ``<stem>.adversarial.safetensors`` (a format that cannot carry code), keyed
like the unit, so transfer and the examples figure read them instead of attacking again, and anyone handed the
file can re-score a metric on them. Only the triplets the unit attacked are stored: ``position`` (their index in
the dataset) and ``x_adv`` (the perturbed input the attack returned: the reference, x0, x1, or the stacked
triplet, as the run's ``--perturb`` says). A triplet whose flip was carried from a smaller radius is in that
unit's file; one proven robust or initially wrong was never perturbed.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: The artifact name of attack units.
ADVERSARIAL = "adversarial"


class AdversarialExamples:
    """Collects one unit's adversarial inputs batch by batch, in dataset positions."""

    def __init__(self) -> None:
        self._positions: list[Tensor] = []
        self._inputs: list[Tensor] = []

    def add(self, positions: Tensor, x_adv: Tensor) -> None:
        self._positions.append(positions.detach().cpu().long())
        self._inputs.append(x_adv.detach().cpu().float())

    def tensors(self) -> dict[str, Tensor]:
        """``position`` (N,) int64 and ``x_adv`` (N, ...) float32, in the order attacked (dataset order)."""
        if not self._positions:
            return {"position": torch.zeros(0, dtype=torch.long), "x_adv": torch.zeros(0)}
        return {"position": torch.cat(self._positions), "x_adv": torch.cat(self._inputs)}


def by_position(tensors: dict[str, Tensor]) -> dict[int, Tensor]:
    """Each stored adversarial input under its dataset position."""
    return {int(p): x for p, x in zip(tensors["position"], tensors["x_adv"], strict=True)}
