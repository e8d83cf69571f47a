"""Attacks on 2AFC decisions (perturbing the reference) and on embeddings."""

from lipsim_bench.attacks.apgd import APGD
from lipsim_bench.attacks.base import Attack, AttackError, ThreatModel, check_adversarial, clamp_to_image, project
from lipsim_bench.attacks.external import FoolboxMinNorm, TorchattacksAPGD
from lipsim_bench.attacks.pgd import PGD
from lipsim_bench.attacks.registry import ATTACKS, get_attack, list_attacks, register_attack
from lipsim_bench.attacks.square import Square

__all__ = [
    "ATTACKS",
    "APGD",
    "PGD",
    "Square",
    "Attack",
    "AttackError",
    "FoolboxMinNorm",
    "ThreatModel",
    "TorchattacksAPGD",
    "check_adversarial",
    "clamp_to_image",
    "get_attack",
    "list_attacks",
    "project",
    "register_attack",
]
