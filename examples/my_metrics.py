# my_metrics.py: a metric in one file (run it: python run_bench.py --plugin my_metrics.py --metrics mean-colour)
import torch

from lipsim_bench.metrics import PerceptualMetric, register_metric


@register_metric("mean-colour", description="1 - cos of the mean colour")
class MeanColour(PerceptualMetric):
    lipschitz = None  # a *proven* l2 bound of embed, or None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) + 0.1
