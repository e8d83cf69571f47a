# my_attack.py: an attack in one file (run it: python run_bench.py --plugin my_attack.py --attacks noise)
import torch

from lipsim_bench.attacks import Attack, register_attack
from lipsim_bench.attacks.base import clamp_to_image, flat_norms, predict, project


@register_attack
class RandomNoise(Attack):
    """Best of `draws` random perturbations on the sphere of radius eps (a weak baseline attack)."""

    name = "noise"

    def __init__(self, norm, eps, draws: int = 8, seed: int = 0):
        super().__init__(norm, eps, draws=draws, seed=seed)
        self.draws, self.seed = draws, seed

    def perturb(self, model, x, y):
        gen = torch.Generator().manual_seed(self.seed)
        x_adv = x.clone()
        for _ in range(self.draws):
            noise = torch.randn(x.shape, generator=gen).to(x)
            scale = self.eps / flat_norms(noise, self.norm).clamp_min(1e-12) if self.norm == "l2" else self.eps
            delta = noise.sign() * self.eps if self.norm == "linf" else noise * scale.view(-1, *[1] * (x.dim() - 1))
            candidate = x + clamp_to_image(x, project(delta, self.threat))
            fooled = (predict(model, candidate) != y) & (predict(model, x_adv) == y)
            x_adv[fooled] = candidate[fooled]
        return x_adv
