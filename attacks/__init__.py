"""Attacks on 2AFC decisions (perturbing the reference) and on embeddings."""

from attacks.registry import get_attack, list_attacks, register_attack

__all__ = ["get_attack", "list_attacks", "register_attack"]
