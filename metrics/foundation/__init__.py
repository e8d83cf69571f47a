"""Adapters for published perceptual metrics built on foundation models and LPIPS.

Registered names: ``clip``, ``open-clip``, ``rclip`` and ``rclip-{tecoa,fare}-{convnext,vitb16,vitb32}``
(:mod:`.clip`), ``dino`` (:mod:`.dino`), ``dreamsim``, ``dreamsim-clip``, ``dreamsim-open-clip``,
``dreamsim-dino`` (:mod:`.dreamsim`), ``lpips`` (:mod:`.lpips`). None ships weights: each finds them
on disk (``--weights-dir`` / ``$LIPSIM_BENCH_WEIGHTS_DIR`` or the standard caches, see :mod:`.weights`)
and never downloads; ``python -m lipsim_bench.metrics.foundation.weights fetch NAME --dir DIR`` does, on a machine
with network. Importing this package is cheap: open_clip, timm, dreamsim and lpips load on first build.
"""

from lipsim_bench.metrics.foundation import clip, dino, dreamsim, lpips  # noqa: F401  (registers the metrics)
