# my_evaluation.py: an evaluation kind in one file (run it: python run_bench.py --plugin my_evaluation.py --evaluations natural,brightness)
from dataclasses import dataclass

import pandas as pd
import torch

from lipsim_bench.evaluations import Evaluation, Kind, register_evaluation
from lipsim_bench.evaluations.twoafc import twoafc_agreement


@dataclass(frozen=True)
class BrightnessOptions:
    eps: tuple[float, ...] = (0.05, 0.1, 0.2)  # brightness shifts of the reference (l-inf size)


@register_evaluation
class Brightness(Evaluation):
    """2AFC score when the reference is made darker by eps (an l-inf shift, clipped to [0, 1])."""

    name = "brightness"
    kind = Kind.ATTACK  # a perturbation: the table's attack columns, the robustness plot
    Options = BrightnessOptions
    description = "2AFC score with the reference darkened by eps"

    def run(self, metric, batches, ctx) -> pd.DataFrame:
        parts = []
        for item in batches:
            ref = item.batch["ref"].to(ctx.device)
            for eps in self.options.eps:
                with torch.no_grad():
                    e_ref = metric.embed((ref - eps).clamp(0, 1))
                    d0 = metric.distance(e_ref, item.e0.to(ctx.device)).cpu()
                    d1 = metric.distance(e_ref, item.e1.to(ctx.device)).cpu()
                parts.append(item.rows(self.name, "linf", eps, twoafc_agreement(d0, d1, item.p), d0=d0, d1=d1))
        return pd.concat(parts, ignore_index=True)

    def flops(self, cost, n_triplets, threat) -> float:
        return n_triplets * (3 + len(self.options.eps)) * cost.forward
