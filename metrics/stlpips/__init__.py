"""ST-LPIPS (shift-tolerant LPIPS): ``stlpips-alex`` and ``stlpips-vgg``, weights from the stlpips-pytorch wheel."""

from lipsim_bench.metrics.stlpips import metric  # noqa: F401  (registers the metrics)
