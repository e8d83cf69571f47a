"""Square Attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020): score-based random search, l2 and linf.

Written to reproduce torchattacks 3.5.1's ``Square`` (a copy of AutoAttack's ``square.py``, which follows
the official square-attack code) step for step and draw for draw, so that ``tests/attacks/test_square.py``
can demand bit-identical output with ``torchattacks.Square``. Facts kept:

- loss, minimised: ``margin = z_y - max_{j!=y} z_j`` ('margin', AutoAttack's), or ``-CE`` ('ce'); an
  example is fooled once its margin is <= 0. A candidate is kept when its loss is lower, or when it
  is misclassified.
- square side from ``p`` (``_p_selection``): ``p = p_init`` up to iteration 10, then halved at 10, 50,
  200, 500, 1000, 2000, 4000, 6000, 8000 (p_init / 512 at the end), on iterations rescaled to a budget of
  10000 (``int(i / n_queries * 10000)``, AutoAttack's ``rescale_schedule``). linf side:
  ``max(round(sqrt(p h w)), 1)``; l2 side: ``max(round(sqrt(p h w)), 3)``, made odd.
- linf: start at vertical stripes ``x + eps * sign`` (one sign per column and channel), clamped; each
  iteration sets one square window to ``+-2 eps`` per channel on top of the best point, then projects on
  the box and on [0, 1]. l2: start with a 5 x 5 grid of ``eta`` blocks (two opposite-sign rectangles of
  ``1 / k^2`` rings, randomly transposed) with random signs per channel, rescaled to norm eps; each
  iteration moves the mass of a second window into the first (window 1 gets ``eta`` plus its old
  content, rescaled to the mass of both windows plus the budget left, per channel) and renormalises
  the whole perturbation to norm eps before clamping.
- the window position (and, linf, the per-channel signs) is drawn ONCE per iteration and shared by the
  whole batch, as AutoAttack does (the original repo draws per example); l2 signs per example and channel.
- queries only for examples not yet fooled: an example costs 1 query at the start and at most
  ``n_queries`` in the loop (AutoAttack's count reaches ``n_queries + 1``); then each restart's result is
  re-classified once (as AutoAttack does) and the clean batch once before everything: at most
  ``1 + restarts * (n_queries + 2)`` forwards per example.
- restarts run on the examples still robust; the random stream (seeded once per call) continues.
  Examples misclassified before the attack are returned unchanged, as are those never fooled.

Why not ``torchattacks.Square`` directly: it calls the model on subsets of the batch it picks itself,
while a classifier with per-example state (``TwoAFCClassifier``'s cached x0/x1 embeddings) must be
narrowed with ``restrict(index)`` to the same subset; and it reseeds the caller's global RNG. Here every
call goes through ``restrict`` and every draw comes from a local generator whose stream equals the one
torchattacks draws after ``torch.manual_seed(seed)`` (CPU draws moved to the device, as it does).
Because windows are shared by the batch, an example's trajectory depends on which others are attacked
with it: ``DrawRows`` alignment cannot apply and is ignored.
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F

from lipsim_bench.attacks.base import MAX_STEPS, Attack, AttackError, Model, Norm, predict, restrict
from lipsim_bench.attacks.registry import register_attack

SQUARE_LOSSES = ("margin", "ce")
_PAD = 1e-12  # AutoAttack's guard against a zero norm
#: AutoAttack's thresholds of the (rescaled) iteration where p is halved again.
_P_STEPS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def _p_selection(it: int, p_init: float, n_queries: int, rescale: bool = True) -> float:
    """Fraction of the image a square covers at iteration ``it`` (AutoAttack's piecewise schedule)."""
    if rescale:
        it = int(it / n_queries * 10000)
    halvings = sum(it > t for t in _P_STEPS)
    return p_init / 2**halvings


def _eta_rectangles(x: int, y: int) -> torch.Tensor:
    """``(x, y)`` block of concentric rings weighted ``1 / (k + 1)^2``, unit l2 norm (AutoAttack's order of ops)."""
    delta = torch.zeros([x, y])
    x_c, y_c = x // 2 + 1, y // 2 + 1
    corner = [x_c - 1, y_c - 1]
    for counter in range(max(x_c, y_c)):
        delta[
            max(corner[0], 0) : min(corner[0] + (2 * counter + 1), x),
            max(0, corner[1]) : min(corner[1] + (2 * counter + 1), y),
        ] += 1.0 / (torch.Tensor([counter + 1]).view(1, 1) ** 2)
        corner[0] -= 1
        corner[1] -= 1
    delta /= (delta**2).sum(dim=(0, 1), keepdim=True).sqrt()
    return delta


@cache
def _eta_base(s: int) -> torch.Tensor:
    """AutoAttack's ``eta(s)`` before its random transpose: deterministic, so computed once per size."""
    delta = torch.zeros([s, s])
    delta[: s // 2] = _eta_rectangles(s // 2, s)
    delta[s // 2 :] = -1.0 * _eta_rectangles(s - s // 2, s)
    delta /= (delta**2).sum(dim=(0, 1), keepdim=True).sqrt()
    return delta


@register_attack
class Square(Attack):
    """Square Attack (score-based, no gradients), AutoAttack's version; see the module docstring for the facts kept."""

    name = "square"
    uses_gradients = False  # score-based: queries the decision, never a gradient

    def __init__(
        self,
        norm: Norm,
        eps: float,
        n_queries: int = 5000,
        p_init: float = 0.8,
        restarts: int = 1,
        loss: str = "margin",
        seed: int = 0,
        rescale_schedule: bool = True,
    ) -> None:
        if isinstance(n_queries, bool) or not isinstance(n_queries, int) or not 1 <= n_queries <= MAX_STEPS:
            raise ValueError(f"n_queries must be an integer in [1, {MAX_STEPS}], got {n_queries!r}")
        if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
            raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")
        if not 0.0 < p_init <= 1.0:
            raise ValueError(f"p_init must be in (0, 1], got {p_init!r}")
        if loss not in SQUARE_LOSSES:
            raise ValueError(f"loss must be one of {SQUARE_LOSSES}, got {loss!r}")
        super().__init__(
            norm, eps, n_queries=n_queries, p_init=p_init, restarts=restarts, loss=loss, seed=seed,
            rescale_schedule=rescale_schedule,
        )  # fmt: skip
        self.n_queries, self.p_init, self.restarts, self.loss = n_queries, p_init, restarts, loss
        self.seed, self.rescale_schedule = seed, rescale_schedule

    # ------------------------------------------------------------------------- draws (AutoAttack's helpers)

    def _gen_draw(self, gen: torch.Generator, shape: list[int], device: torch.device) -> torch.Tensor:
        return torch.rand(shape, generator=gen).to(device)

    def _random_choice(self, gen: torch.Generator, shape: list[int], device: torch.device) -> torch.Tensor:
        return torch.sign(2 * self._gen_draw(gen, shape, device) - 1)

    def _random_int(self, gen: torch.Generator, low: int, high: int) -> int:
        return int((low + (high - low) * torch.rand([1], generator=gen)).long())

    def _eta(self, gen: torch.Generator, s: int, device: torch.device) -> torch.Tensor:
        delta = _eta_base(s).to(device)
        return delta.permute([1, 0]) if torch.rand([1], generator=gen) > 0.5 else delta

    # ------------------------------------------------------------------------- attack

    def _margin_and_loss(self, model: Model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z_y - max_{j!=y} z_j, loss to minimise)`` at ``x`` (one query per example)."""
        logits = model(x).clone()
        xent = F.cross_entropy(logits, y, reduction="none")
        u = torch.arange(x.shape[0], device=logits.device)
        y_corr = logits[u, y].clone()
        logits[u, y] = -float("inf")
        margin = y_corr - logits.max(dim=-1)[0]
        return margin, (-1.0 * xent if self.loss == "ce" else margin.clone())  # two tensors, updated apart

    def perturb(self, model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Attack the correctly classified examples; restarts only on those still robust."""
        if x.dim() != 4 or x.shape[2] != x.shape[3] or (self.norm == "l2" and x.shape[2] < 5):
            raise AttackError(
                f"square attack needs square images (N, C, H, H), H >= 5 for l2; got shape {tuple(x.shape)}"
            )
        robust = predict(model, x) == y
        x_adv = x.clone()
        gen = torch.Generator().manual_seed(self.seed)  # the CPU stream torchattacks' manual_seed gives
        for _ in range(self.restarts):
            idx = robust.nonzero().flatten()
            if idx.numel() == 0:
                break
            sub = restrict(model, idx)
            _, adv_curr = self.single_run(sub, x[idx], y[idx], gen)
            fooled = predict(sub, adv_curr) != y[idx]
            x_adv[idx[fooled]] = adv_curr[fooled]
            robust[idx[fooled]] = False
        return x_adv

    def single_run(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One run on all of ``x``: ``(queries per example, best points)``, AutoAttack's ``attack_single_run``."""
        with torch.no_grad():
            if self.norm == "linf":
                x_best = self._linf_start(x, gen)
            else:
                x_best = self._l2_start(x, gen)
            margin_min, loss_min = self._margin_and_loss(model, x_best, y)
            n_queries = torch.ones(x.shape[0], device=x.device)
            for i_iter in range(self.n_queries):
                idx_to_fool = (margin_min > 0.0).nonzero().flatten()
                if len(idx_to_fool) == 0:
                    break
                x_curr, x_best_curr, y_curr = x[idx_to_fool], x_best[idx_to_fool], y[idx_to_fool]
                margin_min_curr, loss_min_curr = margin_min[idx_to_fool], loss_min[idx_to_fool]
                p = _p_selection(i_iter, self.p_init, self.n_queries, self.rescale_schedule)
                if self.norm == "linf":
                    x_new = self._linf_candidate(x_curr, x_best_curr, p, gen)
                else:
                    x_new = self._l2_candidate(x_curr, x_best_curr, p, gen)
                margin, loss = self._margin_and_loss(restrict(model, idx_to_fool), x_new, y_curr)
                idx_improved = (loss < loss_min_curr).float()
                loss_min[idx_to_fool] = idx_improved * loss + (1.0 - idx_improved) * loss_min_curr
                idx_improved = torch.max(idx_improved, (margin <= 0.0).float())
                margin_min[idx_to_fool] = idx_improved * margin + (1.0 - idx_improved) * margin_min_curr
                idx_improved = idx_improved.reshape([-1, *[1] * (x.dim() - 1)])
                x_best[idx_to_fool] = idx_improved * x_new + (1.0 - idx_improved) * x_best_curr
                n_queries[idx_to_fool] += 1.0
                if bool((margin_min <= 0.0).all()):
                    break
        return n_queries, x_best

    def _linf_start(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Vertical stripes: ``x + eps * sign``, one sign per (example, channel, column)."""
        c, _, w = x.shape[1:]
        return torch.clamp(x + self.eps * self._random_choice(gen, [x.shape[0], c, 1, w], x.device), 0.0, 1.0)

    def _linf_candidate(self, x: torch.Tensor, x_best: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
        """One window (shared by the batch) set to ``+-2 eps`` per channel on the best point, projected."""
        c, h, w = x.shape[1:]
        s = max(int(round(math.sqrt(p * (c * h * w) / c))), 1)
        vh, vw = self._random_int(gen, 0, h - s), self._random_int(gen, 0, w - s)
        new_deltas = torch.zeros([c, h, w], device=x.device)
        new_deltas[:, vh : vh + s, vw : vw + s] = 2.0 * self.eps * self._random_choice(gen, [c, 1, 1], x.device)
        x_new = x_best + new_deltas
        x_new = torch.min(torch.max(x_new, x - self.eps), x + self.eps)
        return torch.clamp(x_new, 0.0, 1.0)

    def _l2_start(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """A 5 x 5 grid of ``eta`` blocks with random signs per (example, channel), scaled to norm eps."""
        c, h, w = x.shape[1:]
        delta_init = torch.zeros_like(x)
        s = h // 5
        sp_init = (h - s * 5) // 2
        vh = sp_init
        for _ in range(h // s):
            vw = sp_init
            for _ in range(w // s):
                eta = self._eta(gen, s, x.device).view(1, 1, s, s)
                delta_init[:, :, vh : vh + s, vw : vw + s] += eta * self._random_choice(
                    gen, [x.shape[0], c, 1, 1], x.device
                )
                vw += s
            vh += s
        return torch.clamp(x + _normalize_l2(delta_init) * self.eps, 0.0, 1.0)

    def _l2_candidate(self, x: torch.Tensor, x_best: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
        """Move window 2's mass into window 1 (``eta`` + its old content), renormalise to norm eps, clamp."""
        n, c, h, w = x.shape
        delta_curr = x_best - x
        s = max(int(round(math.sqrt(p * (c * h * w) / c))), 3)
        if s % 2 == 0:
            s += 1
        vh, vw = self._random_int(gen, 0, h - s), self._random_int(gen, 0, w - s)
        mask = torch.zeros_like(x)
        mask[:, :, vh : vh + s, vw : vw + s] = 1.0
        norms_window_1 = (delta_curr[:, :, vh : vh + s, vw : vw + s] ** 2).sum(dim=(-2, -1), keepdim=True).sqrt()
        vh2, vw2 = self._random_int(gen, 0, h - s), self._random_int(gen, 0, w - s)
        mask_2 = torch.zeros_like(x)
        mask_2[:, :, vh2 : vh2 + s, vw2 : vw2 + s] = 1.0
        norms_image = _l2_norm(x_best - x)
        norms_windows = _l2_norm(delta_curr * torch.max(mask, mask_2))
        new_deltas = torch.ones([n, c, s, s], device=x.device)
        new_deltas *= self._eta(gen, s, x.device).view(1, 1, s, s) * self._random_choice(gen, [n, c, 1, 1], x.device)
        new_deltas += delta_curr[:, :, vh : vh + s, vw : vw + s] / (_PAD + norms_window_1)
        budget = torch.max((self.eps * torch.ones_like(new_deltas)) ** 2 - norms_image**2, torch.zeros_like(new_deltas))
        new_deltas = (
            new_deltas
            / (_PAD + (new_deltas**2).sum(dim=(-2, -1), keepdim=True).sqrt())
            * (budget / c + norms_windows**2).sqrt()
        )
        delta_curr[:, :, vh2 : vh2 + s, vw2 : vw2 + s] = 0.0
        delta_curr[:, :, vh : vh + s, vw : vw + s] = new_deltas + 0
        return torch.clamp(x + _normalize_l2(delta_curr) * self.eps, 0.0, 1.0)


def _l2_norm(v: torch.Tensor) -> torch.Tensor:
    """Per-example l2 norm ``(N, 1, 1, 1)``, summed as AutoAttack sums it."""
    return (v**2).reshape(v.shape[0], -1).sum(-1).sqrt().view(-1, 1, 1, 1)


def _normalize_l2(v: torch.Tensor) -> torch.Tensor:
    return v / (_l2_norm(v) + _PAD)
