"""The stlpips-pytorch package's own ST-LPIPS, imported for the equivalence tests only.

Its modules import IPython and torchsummary without declaring them (neither is used to compute a distance), so
where they are missing a stand-in module is present during the import and removed afterwards.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
import torch


def official_stlpips(net: str) -> Any:
    """``stlpips.LPIPS(net=net, variant="shift_tolerant")`` in eval mode, with the wheel's weights."""
    pytest.importorskip("stlpips_pytorch")
    added = []
    for name, attribute in (("IPython", "embed"), ("torchsummary", "summary")):
        try:
            __import__(name)
        except ImportError:
            stand_in = types.ModuleType(name)
            setattr(stand_in, attribute, lambda *args, **kwargs: None)
            sys.modules[name] = stand_in
            added.append(name)
    try:
        from stlpips_pytorch import stlpips
    finally:
        for name in added:
            sys.modules.pop(name, None)
    return stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False).eval().requires_grad_(False)


def assert_same_distances(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """Equal up to float rounding: the sums run in another order (packed vector vs per-layer means)."""
    assert torch.allclose(ours, theirs.flatten(), rtol=1e-5, atol=1e-8), (ours, theirs.flatten())
