"""Attacks on 2AFC decisions (perturbing the reference) and on embeddings."""

from attacks.registry import ATTACKS, get_attack, list_attacks, register_attack
from attacks.base import Attack, AttackError, ThreatModel, check_adversarial, clamp_to_image, project
from attacks.apgd import APGD
from attacks.pgd import PGD
from attacks.external import FoolboxMinNorm, TorchattacksAPGD

__all__ = [
    "ATTACKS",
    "APGD",
    "PGD",
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
