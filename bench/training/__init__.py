"""LipSim's two training steps for any trainable metric: distillation, then 2AFC hinge fine-tuning.

``distill(student, teacher, images, DistillConfig(out=...))`` and
``finetune(metric, dataset, FinetuneConfig(out=...))`` both write ``OUT/last.pt`` (resumable),
``OUT/log.csv``, ``OUT/final.safetensors`` (state dict only) and ``OUT/train_config.json``.
The command line is :func:`lipsim_bench.training.cli.cmd_train` (``run_bench.py train ...``).
"""

from lipsim_bench.training.checkpoints import load_weights
from lipsim_bench.training.config import TrainConfig, TrainResult
from lipsim_bench.training.distill import DistillConfig, distill
from lipsim_bench.training.evaluate import evaluate_2afc
from lipsim_bench.training.finetune import FinetuneConfig, finetune, hinge_loss

__all__ = [
    "DistillConfig",
    "FinetuneConfig",
    "TrainConfig",
    "TrainResult",
    "distill",
    "evaluate_2afc",
    "finetune",
    "hinge_loss",
    "load_weights",
]
