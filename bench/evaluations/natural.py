"""``natural``: the 2AFC agreement of the metric's decisions on clean triplets."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from lipsim_bench.evaluations.base import Context, EmbeddedBatch, Evaluation, Kind, empty_rows, natural_agreement
from lipsim_bench.evaluations.registry import register_evaluation
from lipsim_bench.metrics import PerceptualMetric


@register_evaluation
class Natural(Evaluation):
    """Clean 2AFC score: one forward pass of ref, x0, x1 per triplet."""

    name = "natural"
    kind = Kind.CLEAN
    description = "2AFC agreement on clean triplets"

    def run(self, metric: PerceptualMetric, batches: Iterable[EmbeddedBatch], ctx: Context) -> pd.DataFrame:
        parts = [item.rows(self.name, None, np.nan, natural_agreement(item)) for item in batches]
        return pd.concat(parts, ignore_index=True) if parts else empty_rows()
