"""Gradient health: how many of the input gradients an attack took were non-finite or all zero, per triplet.

A gradient attack that meets a NaN/inf gradient (a square root at zero features in a channel
normalisation, an epsilon rounded away in bf16) or an exactly-zero one (a saturated loss, a quantised or
gated embedding) takes no useful step, fails silently, and the triplet would be counted robust. Every such
attack backpropagates through the 2AFC classifier's input, whatever library it comes from (our APGD/PGD,
torchattacks, foolbox, a plugin), so one hook there sees every gradient any attack takes: the classifier
calls :meth:`GradHealth.watch` on its input, and black-box attacks (no backward pass) register nothing.

Counts are per triplet of the batch the monitor was made for, also after attacks restrict the classifier
to subsets (:meth:`GradHealth.restrict` composes the index). One backward pass counts once per triplet: a
triplet whose input appears several times in it (noisy copies, EOT) is non-finite when any copy's gradient
is, and all-zero when every copy's is (its gradient as a whole is then zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

#: Per-triplet columns of attack rows: counts of non-finite and all-zero input gradients, and their flag.
GRAD_COLUMNS = ("grad_nonfinite", "grad_zero", "grad_masked")


@dataclass
class _Counts:
    nonfinite: Tensor
    zero: Tensor


class GradHealth:
    """Counts of non-finite and all-zero input gradients per triplet of one batch (in its own order)."""

    def __init__(self, size: int, *, _counts: _Counts | None = None, _index: Tensor | None = None) -> None:
        self.size = size
        self._counts = _counts or _Counts(torch.zeros(size, dtype=torch.long), torch.zeros(size, dtype=torch.long))
        self._index = _index  # rows of the inputs this view sees -> triplets of the batch (None: the same)

    @property
    def nonfinite(self) -> Tensor:
        """Per triplet: gradients seen with a NaN or inf anywhere."""
        return self._counts.nonfinite.clone()

    @property
    def zero(self) -> Tensor:
        """Per triplet: gradients seen that were exactly zero everywhere."""
        return self._counts.zero.clone()

    @property
    def masked(self) -> Tensor:
        """Per triplet: at least one non-finite or all-zero gradient (a wasted step; the attack's failure proves nothing)."""
        return (self._counts.nonfinite + self._counts.zero) > 0

    def restrict(self, index: Tensor) -> GradHealth:
        """The view of a subset (the classifier's ``restrict``): its rows count for the same triplets."""
        index = index.detach().cpu()
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        index = index.long()
        return GradHealth(self.size, _counts=self._counts, _index=index if self._index is None else self._index[index])

    def watch(self, x: Tensor) -> Tensor:
        """``x`` as the classifier should use it: where a gradient will flow, an alias whose hook records it.

        The alias (not ``x`` itself) carries the hook, so it fires once per backward through this forward pass
        only, never again when an attack reuses ``x`` in a later forward.
        """
        if not (x.requires_grad and torch.is_grad_enabled()):
            return x
        alias = x.view_as(x)
        alias.register_hook(self._record)
        return alias

    def _record(self, grad: Tensor) -> None:
        flat = grad.detach().flatten(1)
        bad = (~torch.isfinite(flat)).any(dim=1).cpu().long()
        live = (flat != 0).any(dim=1).cpu().long()  # NaN != 0: a non-finite row is never counted as zero too
        rows = torch.arange(len(flat)) if self._index is None else self._index
        if len(rows) != len(flat):
            return  # a gradient of another shape than this view's rows: not one per triplet, nothing to attribute
        seen = torch.zeros(self.size, dtype=torch.long).index_add_(0, rows, torch.ones_like(rows))
        bad_any = torch.zeros(self.size, dtype=torch.long).index_add_(0, rows, bad) > 0
        live_any = torch.zeros(self.size, dtype=torch.long).index_add_(0, rows, live) > 0
        self._counts.nonfinite += bad_any.long()
        self._counts.zero += ((seen > 0) & ~bad_any & ~live_any).long()

    def columns(self, mask: Tensor | None = None) -> dict[str, np.ndarray]:
        """The per-triplet row columns (``mask``: the triplets of the rows, when the monitor saw a larger batch)."""
        nonfinite, zero, masked = self._counts.nonfinite, self._counts.zero, self.masked
        if mask is not None:
            nonfinite, zero, masked = nonfinite[mask], zero[mask], masked[mask]
        return {"grad_nonfinite": nonfinite.numpy(), "grad_zero": zero.numpy(), "grad_masked": masked.numpy()}


def no_gradients(size: int) -> dict[str, np.ndarray]:
    """The columns of triplets no gradient attack ran on (carried, proven, not correct)."""
    return GradHealth(size).columns()


def _flags(column: pd.Series) -> np.ndarray:
    """A boolean column as computed or as read back from CSV (the text True/False); missing is False.

    (decided.as_bool's rule, not imported: decided reaches twoafc, which imports this module.)"""
    if column.dtype == bool:
        return column.to_numpy()
    return column.astype(str).str.strip().str.lower().isin(("true", "1", "1.0")).to_numpy(bool)


def grad_notes(metric_name: str, evaluation: str, rows: pd.DataFrame, flipped: str = "flipped") -> list[str]:
    """One footer line per radius where a triplet saw non-finite or all-zero input gradients.

    ``grad_masked`` marks every such triplet, flipped or not (a masked step wastes budget either way); the
    unflipped ones count as robust without evidence: the attack never had a usable gradient to fail with.
    """
    if not len(rows) or "grad_masked" not in rows.columns:
        return []
    lines = []
    for (norm, eps), part in rows.groupby(["norm", "eps"], sort=True, dropna=False):
        masked = _flags(part["grad_masked"])
        if not masked.any():
            continue
        unflipped = masked & ~_flags(part[flipped]) if flipped in part.columns else masked
        nonfinite = int((part["grad_nonfinite"].fillna(0).to_numpy() > 0)[masked].sum())
        threat = f" {norm} {eps:g}" if isinstance(norm, str) else f" {eps:g}"
        lines.append(
            f"{metric_name} {evaluation}{threat}: {int(masked.sum())} triplets saw non-finite or zero input gradients "
            f"(grad_masked; {nonfinite} of them non-finite); {int(unflipped.sum())} of them count as robust without evidence"
        )
    return lines
