"""Threat model and the attack contract shared by every attack.

An attack is an object built with its hyperparameters and called as ``attack(model, x, y) -> x_adv``
(the torchattacks / AutoAttack convention), where ``model(x) -> logits (N, C)`` is any callable
classifier on [0, 1] inputs. ``Attack.__call__`` validates every output with ``check_adversarial``,
so no adversarial example can be scored while it breaks the threat model.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from lipsim_bench.errors import BenchError

Norm = Literal["l2", "linf"]
Model = Callable[[torch.Tensor], torch.Tensor]
LossName = Literal["ce", "margin"]

NORMS: tuple[str, ...] = ("l2", "linf")
#: More iterations than any published protocol uses by orders of magnitude: a typo, not a setting.
MAX_STEPS = 100_000
LOSSES: tuple[str, ...] = ("ce", "margin")


class AttackError(BenchError):
    """An attack produced (or was given) something that must not be scored."""


#: ``sample(shape, generator=gen)``: torch.randn or torch.rand.
Sampler = Callable[..., torch.Tensor]
#: ``noise(sample, shape)``: a random draw of ``shape`` (see :meth:`Attack.noise`).
Noise = Callable[[Sampler, tuple[int, ...]], torch.Tensor]


@dataclass(frozen=True)
class DrawRows:
    """Random draws aligned with a larger set of examples: example i of the call takes row
    ``rows[i]`` of the draw that ``total`` examples would get.

    A caller that attacks only part of the examples it would otherwise attack (the triplets still
    undecided at a larger radius) passes this, so each example starts exactly where it would start
    in the whole set, and its (per-example) trajectory is the one it would follow there.
    """

    rows: torch.Tensor
    total: int


@dataclass(frozen=True)
class ThreatModel:
    """Perturbations allowed around each input: ``||delta||_norm <= eps``, ``x + delta`` in [0, 1]."""

    norm: Norm
    eps: float

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)):
            raise ValueError(f"eps must be a real number, got {self.eps!r}")
        if not math.isfinite(self.eps) or self.eps < 0:
            raise ValueError(f"eps must be finite and >= 0, got {self.eps!r}")
        object.__setattr__(self, "eps", float(self.eps))


def flat_norms(v: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Per-example norm of a batch ``(N, ...)`` -> ``(N,)``."""
    flat = v.flatten(1)
    if norm == "l2":
        return flat.norm(p=2, dim=1)
    return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(flat.shape[0])


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-example ``(N,)`` tensor so it broadcasts against ``like`` ``(N, ...)``."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def project(delta: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
    """Project perturbations onto the threat model's ball (l2 ball or linf box) around 0."""
    if threat.norm == "linf":
        return delta.clamp(-threat.eps, threat.eps)
    norms = flat_norms(delta, "l2")
    factor = torch.where(norms > threat.eps, threat.eps / norms.clamp_min(1e-30), torch.ones_like(norms))
    return delta * _expand(factor, delta)


def clamp_to_image(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """The perturbation that keeps ``x + delta`` inside [0, 1] (clipping in the image, not in delta)."""
    return (x + delta).clamp(0.0, 1.0) - x


def check_adversarial(x: torch.Tensor, x_adv: torch.Tensor, threat: ThreatModel, atol: float = 1e-5) -> None:
    """Raise ``AttackError`` unless ``x_adv`` is finite, in [0, 1] and within the threat model of ``x``.

    ``atol`` absorbs float rounding of the projection (an l2 norm of 150k float32 values is only
    good to ~1e-6 relative); anything beyond it is a bug in the attack, not rounding.
    """
    if x_adv.shape != x.shape:
        raise AttackError(f"adversarial batch has shape {tuple(x_adv.shape)}, expected {tuple(x.shape)}")
    bad = ~torch.isfinite(x_adv)
    if bad.any():
        rows = bad.flatten(1).any(1).nonzero().flatten().tolist()
        raise AttackError(f"adversarial examples contain NaN/inf values (examples {rows[:10]})")
    low, high = float(x_adv.min()), float(x_adv.max())
    if low < -atol or high > 1.0 + atol:
        raise AttackError(f"adversarial values outside [0, 1]: min {low:.6g}, max {high:.6g} (atol {atol:g})")
    dist = flat_norms((x_adv - x).double(), threat.norm)
    excess = dist - threat.eps
    worst = int(excess.argmax()) if excess.numel() else 0
    if excess.numel() and float(excess[worst]) > atol:
        raise AttackError(
            f"{threat.norm} norm exceeds eps={threat.eps:g} by {float(excess[worst]):.3g} "
            f"(example {worst}: norm {float(dist[worst]):.6g}; atol {atol:g})"
        )


def check_inputs(x: torch.Tensor, y: torch.Tensor) -> None:
    """Reject inputs an attack cannot be trusted on: wrong shapes, non-finite or outside [0, 1]."""
    if x.dim() < 2:
        raise AttackError(f"x must be a batch (N, ...), got shape {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise AttackError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if not torch.isfinite(x).all():
        raise AttackError("clean inputs contain NaN/inf values")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise AttackError(f"clean inputs outside [0, 1]: min {float(x.min()):.6g}, max {float(x.max()):.6g}")


def restrict(model: Model, index: torch.Tensor) -> Model:
    """The classifier of a subset of the batch.

    Most classifiers are the same for every example; one with per-example state (the 2AFC
    classifier caches each triplet's x0/x1 embeddings) offers ``restrict(index)``, so attacks
    that drop finished examples keep that state aligned with the examples still under attack.
    """
    return model.restrict(index) if hasattr(model, "restrict") else model


def predict(model: Model, x: torch.Tensor) -> torch.Tensor:
    """Predicted labels (no gradient): ``argmax`` of the logits, first index on ties as torch.max."""
    with torch.no_grad():
        return model(x).max(dim=1).indices


def per_example_loss(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Loss to maximise, one value per example: cross-entropy, or margin ``max_{j!=y} z_j - z_y``.

    The margin is positive exactly when the example is misclassified; with 2 logits CE and margin
    rank points the same way (CE = softplus(margin)).
    """
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if loss == "margin":
        true = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.scatter(1, y[:, None], float("-inf"))
        return others.amax(dim=1) - true
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def input_gradient(model: Model, x: torch.Tensor, y: torch.Tensor, loss: str) -> tuple[torch.Tensor, ...]:
    """``(logits, per-example loss, d sum(loss) / d x)`` at ``x``; the model's parameters get no grad."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        losses = per_example_loss(logits, y, loss)
        grad = torch.autograd.grad(losses.sum(), [x])[0]
    # a NaN/inf entry (a square root at zero features) would make the whole step NaN, and a NaN iterate reads as
    # fooled (argmax of NaN logits): no step along it instead; the 2AFC classifier's hook still counts it
    # (lipsim_bench.evaluations.grad_health), so the triplet is marked, never silently robust
    grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
    return logits.detach(), losses.detach(), grad.detach()


class Attack(ABC):
    """Contract: built with hyperparameters, called as ``attack(model, x, y) -> x_adv``.

    Subclasses implement ``perturb`` and pass every hyperparameter to ``__init__`` so that
    ``config()`` records them all. ``__call__`` validates inputs and outputs.
    """

    name: ClassVar[str] = "attack"
    #: Whether the attack follows input gradients (False: score-based, e.g. Square). An ensemble's worst case
    #: reads it: a gradient-free attack beating the gradient attacks is a sign of gradient masking.
    uses_gradients: ClassVar[bool] = True

    def __init__(self, norm: Norm, eps: float, **hyperparameters: Any) -> None:
        self.threat = ThreatModel(norm, eps)
        self._hyperparameters = dict(hyperparameters)

    @property
    def norm(self) -> Norm:
        return self.threat.norm

    @property
    def eps(self) -> float:
        return self.threat.eps

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild the attack, for result records."""
        return {"attack": self.name, "norm": self.norm, "eps": self.eps, **self._hyperparameters}

    @abstractmethod
    def perturb(self, model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Adversarial batch for ``model`` at ``(x, y)``; ``x`` is already validated."""

    def __call__(self, model: Model, x: torch.Tensor, y: torch.Tensor, *, rows: DrawRows | None = None) -> torch.Tensor:
        x, y = x.detach(), y.detach()
        check_inputs(x, y)
        if rows is not None and (rows.rows.shape != (len(x),) or (len(x) and int(rows.rows.max()) >= rows.total)):
            raise AttackError(f"draw rows {tuple(rows.rows.shape)} (of {rows.total}) do not fit a batch of {len(x)}")
        self._rows = rows
        try:
            x_adv = self.perturb(model, x, y).detach()
        finally:
            self._rows = None
        check_adversarial(x, x_adv, self.threat)
        return x_adv

    def noise(
        self, sample: Sampler, shape: tuple[int, ...], gen: torch.Generator, subset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """A random draw for the examples ``subset`` of this call (all when None), aligned by ``DrawRows``
        when the caller gave them: rows of the draw for the whole set, else a draw of ``shape``."""
        rows: DrawRows | None = getattr(self, "_rows", None)
        if rows is None:
            return sample(shape, generator=gen)
        picked = rows.rows if subset is None else rows.rows[subset.cpu()]
        return sample((rows.total, *shape[1:]), generator=gen)[picked.cpu()]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "attack")
        return f"{type(self).__name__}({args})"
