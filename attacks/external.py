"""External attacks behind the house contract ``attack(model, x, y) -> x_adv``.

- ``TorchattacksAPGD``: torchattacks 3.5.1's ``APGD`` (a reproduction of AutoAttack's APGD) with
  AutoAttack's 100 steps, not torchattacks' default of 10. torchattacks reseeds the global torch RNG;
  the wrapper restores it, so running the attack leaves the caller's random stream alone.
- ``FoolboxMinNorm``: foolbox 3's minimum-norm attacks (FMN or DDN). ``radii`` gives each example an
  empirical radius ``||x_adv - x||`` (0 when already misclassified, inf where it failed): an upper
  bound on the true minimal radius, to set beside a certified lower bound. Called as an attack, the
  minimal adversarial is projected onto the eps ball (foolbox's own ``clipped`` convention).

Both need an ``nn.Module``: plain callables are wrapped without registering them as submodules,
so the wrappers' ``eval()``/``to()`` never touch the caller's model.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from lipsim_bench.attacks.base import Attack, Model, Norm, clamp_to_image, flat_norms, predict, project, restrict
from lipsim_bench.attacks.registry import register_attack
from lipsim_bench.extras import require


class CallableModule(nn.Module):
    """An ``nn.Module`` view of any callable ``x -> logits`` (for libraries that demand a Module)."""

    def __init__(self, fn: Model) -> None:
        super().__init__()
        self.__dict__["fn"] = fn  # not a submodule: our mode switches must not change the caller's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def as_module(model: Model) -> nn.Module:
    """``model`` itself if it is a Module, else an eval-mode ``CallableModule`` around it."""
    return model if isinstance(model, nn.Module) else CallableModule(model).eval()


@contextlib.contextmanager
def _preserved_rng(device: torch.device) -> Iterator[None]:
    """Restore the global CPU (and this CUDA device's) RNG state after a library reseeds it."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


@register_attack
class TorchattacksAPGD(Attack):
    """``torchattacks.APGD`` with AutoAttack's defaults (100 steps); the reference our APGD matches."""

    name = "torchattacks-apgd"

    def __init__(
        self, norm: Norm, eps: float, steps: int = 100, restarts: int = 1, loss: str = "ce", rho: float = 0.75,
        seed: int = 0,
    ) -> None:  # fmt: skip
        if loss not in ("ce", "dlr"):
            raise ValueError(f"torchattacks APGD supports loss 'ce' or 'dlr' (>= 3 classes), got {loss!r}")
        super().__init__(norm, eps, steps=steps, restarts=restarts, loss=loss, rho=rho, seed=seed)
        self.steps, self.restarts, self.loss, self.rho, self.seed = steps, restarts, loss, rho, seed

    def perturb(self, model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not hasattr(model, "restrict"):
            return self._torchattacks(model, x, y, self.restarts, self.seed)
        # torchattacks calls the model on subsets it picks itself; a classifier with per-example
        # state must see whole batches, so restarts run here, one at a time, on the still-robust.
        x_adv = x.clone()
        robust = predict(model, x) == y
        for restart in range(self.restarts):
            idx = robust.nonzero().flatten()
            if idx.numel() == 0:
                break
            sub = restrict(model, idx)
            out = self._torchattacks(sub, x[idx], y[idx], 1, self.seed + restart)
            fooled = predict(sub, out) != y[idx]
            x_adv[idx[fooled]] = out[fooled]
            robust[idx[fooled]] = False
        return x_adv

    def _torchattacks(self, model: Model, x: torch.Tensor, y: torch.Tensor, restarts: int, seed: int) -> torch.Tensor:
        torchattacks = require("torchattacks", "the torchattacks APGD attack")

        with contextlib.redirect_stdout(io.StringIO()):  # "Failed to set device" for parameterless models
            attack = torchattacks.APGD(
                as_module(model), norm={"l2": "L2", "linf": "Linf"}[self.norm], eps=self.eps, steps=self.steps,
                n_restarts=restarts, seed=seed, loss=self.loss, rho=self.rho,
            )  # fmt: skip
        attack.set_device(x.device)
        with _preserved_rng(x.device):
            return attack(x, y)


_FOOLBOX_ATTACKS = {("fmn", "l2"): "L2FMNAttack", ("fmn", "linf"): "LInfFMNAttack", ("ddn", "l2"): "DDNAttack"}


@register_attack
class FoolboxMinNorm(Attack):
    """foolbox's FMN (l2, linf) or DDN (l2) minimum-norm attack; deterministic (no random start).

    ``method=None`` picks DDN for l2 and FMN for linf: foolbox 3.3.4's ``L2FMNAttack.project`` never
    shrinks the perturbation (its factor is ``min(1, norms / norms)``), so l2 FMN only keeps the
    smallest adversarial met along plain normalised-gradient steps; on a linear model its radii are
    4x to 500x the exact ones, DDN's within 1%. ``eps`` only matters for ``__call__`` (the threat
    model the output must respect); ``radii`` ignores it.
    """

    name = "fmn"

    def __init__(self, norm: Norm, eps: float, method: str | None = None, steps: int = 100) -> None:
        method = method or ("ddn" if norm == "l2" else "fmn")
        if (method, norm) not in _FOOLBOX_ATTACKS:
            raise ValueError(f"unsupported (method, norm) {(method, norm)}; choose from {sorted(_FOOLBOX_ATTACKS)}")
        if (method, norm) == ("fmn", "l2"):
            warnings.warn(
                "foolbox 3.3.4's l2 FMN does not project (radii are loose upper bounds); prefer 'ddn'", stacklevel=2
            )
        super().__init__(norm, eps, method=method, steps=steps)
        self.method, self.steps = method, steps

    def minimal_adversarial(self, model: Model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_min, radii)``: foolbox's minimal adversarial per example and its norm (inf if not adversarial)."""
        fb = require("foolbox", "the foolbox minimum-norm attack")

        attack = getattr(fb.attacks, _FOOLBOX_ATTACKS[(self.method, self.norm)])(steps=self.steps)
        fmodel = fb.PyTorchModel(as_module(model), bounds=(0.0, 1.0), device=x.device)
        x_min, _, _ = attack(fmodel, x, fb.criteria.Misclassification(y), epsilons=None)
        x_min = x_min.detach().clamp(0.0, 1.0)
        fooled = predict(model, x_min) != y
        radii = flat_norms((x_min - x).double(), self.norm).to(x.dtype)
        radii = torch.where(fooled, radii, torch.full_like(radii, float("inf")))
        radii[predict(model, x) != y] = 0.0
        return x_min, radii

    def radii(self, model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Empirical minimal radius per example: 0 if misclassified, inf where the attack failed."""
        return self.minimal_adversarial(model, x.detach(), y.detach())[1]

    def perturb(self, model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_min, radii = self.minimal_adversarial(model, x, y)
        delta = clamp_to_image(x, project(x_min - x, self.threat))
        delta[radii == 0] = 0.0  # misclassified before the attack: unchanged, as every attack here
        return (x + delta).clamp(0.0, 1.0)
