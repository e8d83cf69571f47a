"""APGD (Croce & Hein 2020), the APGD-CE of AutoAttack, for l2 and linf threat models.

Written to reproduce AutoAttack's ``APGDAttack`` (``autopgd_base.py``) step for step, in the
floating-point order of operations of torchattacks 3.5.1's copy of it, so that
``tests/attacks/test_apgd.py`` can demand bit-identical state and output with ``torchattacks.APGD``.
(torchattacks writes ``(eps * t) / ||t||`` and ``(step * g) / ||g||`` where AutoAttack writes
``eps * (t / ||t||)`` and ``step * (g / ||g||)``, and pads the second l2 projection's norm by 1e-12:
identical results when eps is a power of two, otherwise rounding differences of ~1e-4 in the best
points on a toy MLP, without changing which examples are fooled there.) Facts kept:

- random start: linf ``x + eps * t / max|t|`` with ``t ~ U(-1, 1)`` (a corner-scaled point with
  ``||delta||_inf = eps``, not uniform in the box); l2 ``x + eps * t / ||t||`` with ``t ~ N(0, I)``
  (on the sphere); then clamp to [0, 1]. One draw per restart from a generator seeded once per call.
- step size starts at ``2 * eps``; the update is ``x + a (z - x) + (1 - a)(x - x_prev)`` with
  ``z`` the projected gradient step and ``a = momentum`` (0.75; ``a = 1`` at the first iteration);
  linf: sign gradient; l2: gradient / its l2 norm; each candidate is projected onto the ball and
  clamped to [0, 1].
- checkpoints (``_checkpoint_schedule``): window ``k`` starts at ``int(0.22 n)`` and shrinks by
  ``int(0.03 n)`` down to ``int(0.06 n)``; for n = 100 at iterations 22, 41, 57, 70, 80, 87, 93, 99.
  At a checkpoint an example's step halves and it returns to its best point (and best gradient) if
  its loss increased in at most ``rho * k`` of the last ``k`` iterations, or if it was not halved at
  the previous checkpoint and its best loss has not improved since. (AutoAttack's first window
  compares iteration 0 against an unfilled zero row of its loss table; kept here as a 0 before the
  first loss.)
- which point is returned: AutoAttack's ``x_best_adv``, overwritten at every iterate that is
  misclassified, so an example fooled at any iterate is returned fooled, at the LAST iterate that
  fooled it (not the first; both are adversarial). Examples never fooled are returned unchanged,
  as are examples misclassified before the attack (they are not attacked).
- restarts run only on the examples still correctly classified, so they can only add successes.

AutoAttack itself casts inputs to float32; float64 works here too (then with float64 arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dataclass_fields

import torch

from lipsim_bench.attacks.base import LOSSES, MAX_STEPS, Attack, Model, Noise, Norm, input_gradient, predict, restrict
from lipsim_bench.attacks.registry import register_attack

_PAD = 1e-12  # AutoAttack's guard against dividing by a zero norm


def _checkpoint_schedule(steps: int) -> list[tuple[int, int]]:
    """``(iteration index, window length)`` of each checkpoint, iteration indices from 0.

    AutoAttack computes the fractions p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06) in integer
    iterations: ``k = int(0.22 n)``, then ``k = max(k - int(0.03 n), int(0.06 n))`` (each at least 1).
    """
    k = max(int(0.22 * steps), 1)
    k_min = max(int(0.06 * steps), 1)
    decrement = max(int(0.03 * steps), 1)
    schedule, i = [], k - 1
    while i < steps:
        schedule.append((i, k))
        k = max(k - decrement, k_min)
        i += k
    return schedule


def _l2(v: torch.Tensor) -> torch.Tensor:
    """Per-example l2 norm kept broadcastable, ``(N, 1, ..., 1)``, summed as AutoAttack sums it."""
    return (v**2).sum(dim=tuple(range(1, v.dim())), keepdim=True).sqrt()


def _per_example(value: float, x: torch.Tensor) -> torch.Tensor:
    """A per-example ``(N, 1, ..., 1)`` tensor filled with ``value`` (AutoAttack's ``eps * ones``)."""
    return torch.full((x.shape[0],) + (1,) * (x.dim() - 1), value, dtype=x.dtype, device=x.device)


def _random_start(
    x: torch.Tensor, norm: Norm, eps: float, gen: torch.Generator, noise: Noise | None = None
) -> torch.Tensor:
    """AutoAttack's start: a point at distance eps (linf: scaled to the box's surface), clamped.

    ``noise(sample, shape)`` draws the random numbers (default: ``sample(shape, generator=gen)``)."""
    draw = noise or (lambda sample, shape: sample(shape, generator=gen))
    if norm == "linf":
        t = (2 * draw(torch.rand, x.shape) - 1).to(x)
        scale = t.reshape(t.shape[0], -1).abs().max(dim=1)[0].reshape((-1,) + (1,) * (x.dim() - 1))
    else:
        t = draw(torch.randn, x.shape).to(x)
        scale = _l2(t) + _PAD
    return (x + _per_example(eps, x) * t / scale).clamp(0.0, 1.0)


def _project_linf(p: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.clamp(torch.min(torch.max(p, x - eps), x + eps), 0.0, 1.0)


def _project_l2(p: torch.Tensor, x: torch.Tensor, eps: float, pad: float) -> torch.Tensor:
    """Rescale ``p - x`` to norm ``min(eps, ||p - x|| + pad)`` and clamp; ``pad`` as torchattacks."""
    d = p - x
    n = _l2(d)
    return torch.clamp(x + d / (n + _PAD) * torch.clamp(n + pad, max=eps), 0.0, 1.0)


@dataclass
class APGDState:
    """Per-example state of one APGD run (one restart) on the examples being attacked."""

    x_adv: torch.Tensor
    x_old: torch.Tensor
    grad: torch.Tensor
    step: torch.Tensor  # (N, 1, ..., 1)
    x_best: torch.Tensor  # highest-loss point, where checkpoints return to
    grad_best: torch.Tensor
    loss_best: torch.Tensor
    x_best_adv: torch.Tensor  # last misclassified iterate (the output)
    robust: torch.Tensor  # bool: never misclassified so far
    history: torch.Tensor  # (steps + 1, N) losses, row 0 = 0 (AutoAttack's wrap-around row)
    loss_best_last_check: torch.Tensor
    reduced_last_check: torch.Tensor  # bool


def _select(run: APGDState, keep: torch.Tensor) -> APGDState:
    """The state of a subset of examples (``history`` is indexed on its second axis)."""
    fields = {f.name: getattr(run, f.name) for f in dataclass_fields(run)}
    return APGDState(**{k: (v[:, keep] if k == "history" else v[keep]) for k, v in fields.items()})


@register_attack
class APGD(Attack):
    """AutoAttack's APGD (untargeted, CE or margin loss); see the module docstring for the facts kept."""

    name = "apgd"

    def __init__(
        self,
        norm: Norm,
        eps: float,
        steps: int = 100,
        restarts: int = 1,
        loss: str = "ce",
        rho: float = 0.75,
        seed: int = 0,
        momentum: float = 0.75,
        early_stop: bool = False,
    ) -> None:
        if steps < 1 or restarts < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {steps}, {restarts}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if steps > MAX_STEPS:
            raise ValueError(f"steps must be at most {MAX_STEPS}, got {steps}")
        if not (0.0 < rho < 1.0) or not (0.0 <= momentum <= 1.0):
            raise ValueError(f"rho must be in (0, 1) and momentum in [0, 1], got rho={rho}, momentum={momentum}")
        super().__init__(
            norm,
            eps,
            steps=steps,
            restarts=restarts,
            loss=loss,
            rho=rho,
            seed=seed,
            momentum=momentum,
            early_stop=early_stop,
        )
        self.steps, self.restarts, self.loss = steps, restarts, loss
        self.rho, self.seed, self.momentum = rho, seed, momentum
        self.early_stop = early_stop

    def perturb(self, model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Attack the correctly classified examples; restarts only on those still robust."""
        robust = predict(model, x) == y
        x_adv = x.clone()
        gen = torch.Generator().manual_seed(self.seed)  # CPU draws, as AutoAttack's global RNG
        for _ in range(self.restarts):
            idx = robust.nonzero().flatten()
            if idx.numel() == 0:
                break
            run = self.single_run(restrict(model, idx), x[idx], y[idx], gen, subset=idx)
            fooled = ~run.robust
            x_adv[idx[fooled]] = run.x_best_adv[fooled]
            robust[idx[fooled]] = False
        return x_adv

    def single_run(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, subset: torch.Tensor | None = None
    ) -> APGDState:
        """One APGD run on all of ``x`` from a random start drawn from ``gen``; its final state.

        Public so tests can compare every per-example quantity (best point, best loss, ...) with
        AutoAttack's ``attack_single_run``, not only the adversarial outputs.
        """
        run = self._start(model, x, y, gen, subset)
        checkpoints = dict(_checkpoint_schedule(self.steps))
        if self.early_stop:
            return self._run_until_fooled(run, model, x, y, checkpoints)
        for i in range(self.steps):
            with torch.no_grad():
                run.x_adv = self._momentum_step(run, x, i)
            self._evaluate(run, model, y, i)
            if i in checkpoints:
                self._checkpoint(run, i, checkpoints[i])
        return run

    def _run_until_fooled(
        self, full: APGDState, model: Model, x: torch.Tensor, y: torch.Tensor, checkpoints: dict[int, int]
    ) -> APGDState:
        """The same iterations, dropping each example from the batch once it is fooled.

        Every APGD quantity is per-example (step size, checkpoints, best points) and the only
        random draw is the start, so the examples still running follow exactly the trajectory
        they would follow in the full batch: the set of fooled examples, and the points returned
        for the robust ones, are unchanged. A fooled example returns its *first* adversarial
        iterate instead of its last. Only ``x_best_adv`` and ``robust`` of the result are kept.
        """
        active = torch.arange(len(x), device=x.device)
        run = full
        for i in range(self.steps + 1):
            fooled = ~run.robust
            if fooled.any():
                full.x_best_adv[active[fooled]] = run.x_best_adv[fooled]
                full.robust[active[fooled]] = False
                keep = run.robust.nonzero().flatten()
                run, active = _select(run, keep), active[keep]
                x, y, model = x[keep], y[keep], restrict(model, keep)
            if i == self.steps or active.numel() == 0:
                break
            with torch.no_grad():
                run.x_adv = self._momentum_step(run, x, i)
            self._evaluate(run, model, y, i)
            if i in checkpoints:
                self._checkpoint(run, i, checkpoints[i])
        if run is not full:  # some examples dropped out: the rest write their points back
            full.x_best_adv[active] = run.x_best_adv
        return full

    def _start(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, subset: torch.Tensor | None = None
    ) -> APGDState:
        x_adv = _random_start(x, self.norm, self.eps, gen, lambda sample, shape: self.noise(sample, shape, gen, subset))
        logits, loss, grad = input_gradient(model, x_adv, y, self.loss)
        history = torch.zeros((self.steps + 1, x.shape[0]), dtype=loss.dtype, device=x.device)
        return APGDState(
            x_adv=x_adv,
            x_old=x_adv.clone(),
            grad=grad,
            step=_per_example(2.0 * self.eps, x),
            x_best=x_adv.clone(),
            grad_best=grad.clone(),
            loss_best=loss.clone(),
            x_best_adv=x_adv.clone(),
            robust=logits.max(dim=1).indices == y,
            history=history,
            loss_best_last_check=loss.clone(),
            reduced_last_check=torch.ones_like(y, dtype=torch.bool),
        )

    def _momentum_step(self, run: APGDState, x: torch.Tensor, i: int) -> torch.Tensor:
        """Projected gradient step ``z``, then ``x + a (z - x) + (1 - a)(x - x_prev)``, projected."""
        a = self.momentum if i > 0 else 1.0
        x_adv = run.x_adv
        displacement = x_adv - run.x_old
        run.x_old = x_adv.clone()
        if self.norm == "linf":
            z = _project_linf(x_adv + run.step * torch.sign(run.grad), x, self.eps)
            return _project_linf(x_adv + (z - x_adv) * a + displacement * (1 - a), x, self.eps)
        z = x_adv + run.step * run.grad / (_l2(run.grad) + _PAD)
        z = _project_l2(z, x, self.eps, pad=0.0)
        return _project_l2(x_adv + (z - x_adv) * a + displacement * (1 - a), x, self.eps, pad=_PAD)

    def _evaluate(self, run: APGDState, model: Model, y: torch.Tensor, i: int) -> None:
        """Gradient at the new iterate; keep misclassified iterates and the highest-loss point."""
        logits, loss, run.grad = input_gradient(model, run.x_adv, y, self.loss)
        wrong = logits.max(dim=1).indices != y
        run.robust &= ~wrong
        run.x_best_adv[wrong] = run.x_adv[wrong]
        run.history[i + 1] = loss
        better = loss > run.loss_best
        run.x_best[better] = run.x_adv[better]
        run.grad_best[better] = run.grad[better]
        run.loss_best[better] = loss[better]

    def _checkpoint(self, run: APGDState, i: int, k: int) -> None:
        """Halve the step and go back to the best point where progress oscillated or stalled."""
        window = run.history[i + 1 - k : i + 2]
        increases = (window[1:] > window[:-1]).sum(dim=0)
        oscillated = increases <= k * self.rho
        stalled = ~run.reduced_last_check & (run.loss_best_last_check >= run.loss_best)
        reduce = oscillated | stalled
        run.reduced_last_check = reduce
        run.loss_best_last_check = run.loss_best.clone()
        run.step[reduce] /= 2.0
        run.x_adv[reduce] = run.x_best[reduce]
        run.grad[reduce] = run.grad_best[reduce]
