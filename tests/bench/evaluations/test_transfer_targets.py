"""Transfer under every perturbation target (``--perturb ref|x0|x1|all``): scoring an attack's stored examples
with the metric it attacked gives back the attack's own per-triplet distances, carried flips included."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from lipsim_bench.attacks.base import ThreatModel
from lipsim_bench.datasets import create_dataset
from lipsim_bench.evaluations import get_evaluation
from lipsim_bench.evaluations.base import POSITION, Context, EmbeddingCache, embedded_batches
from lipsim_bench.evaluations.decided import as_bool
from lipsim_bench.evaluations.targets import PERTURB_TARGETS
from lipsim_bench.evaluations.transfer import Transfer
from lipsim_bench.run.loop import make_loader
from lipsim_bench.run.plan import build_metric

CPU = torch.device("cpu")
THREATS = (ThreatModel("l2", 1.0), ThreatModel("l2", 2.0))


@pytest.mark.parametrize("perturb", PERTURB_TARGETS)
def test_the_attacked_metric_gets_its_own_distances_back(perturb: str) -> None:
    metric = build_metric("pixel-l2", CPU, 0)
    loader = make_loader(create_dataset("sample").head(8), 4)
    cache = EmbeddingCache()
    apgd = get_evaluation("apgd")(get_evaluation("apgd").Options(steps=5))
    inputs: dict[tuple, pd.DataFrame] = {}
    stored: dict[tuple, dict] = {}
    prior = None
    for threat in THREATS:  # the larger radius carries the smaller one's flips
        address = ("pixel-l2", "apgd", threat)
        sink = lambda name, tensors, address=address: stored.__setitem__(address, tensors)
        ctx = Context(CPU, 0, "pixel-l2", threat, prior, perturb=perturb, artifacts=sink)
        rows = apgd.run(metric, embedded_batches(metric, loader, CPU, "apgd", "pixel-l2", cache), ctx)
        inputs[address] = prior = rows.drop(columns=[POSITION])
    assert as_bool(inputs[("pixel-l2", "apgd", THREATS[1])]["carried"]).any(), "no carried flip: the chain is untested"
    channels = 9 if perturb == "all" else 3
    assert all(t["x_adv"].shape[1] == channels for t in stored.values() if len(t["position"]))
    ctx = Context(CPU, 0, "pixel-l2", None, perturb=perturb, inputs=inputs, load_artifacts=stored.get)
    rows = Transfer().run(metric, embedded_batches(metric, loader, CPU, "transfer", "pixel-l2", cache), ctx)
    for threat in THREATS:
        own = inputs[("pixel-l2", "apgd", threat)]
        scored = rows[rows["eps"] == threat.eps].drop(columns=[POSITION]).reset_index(drop=True)
        assert list(scored["id"]) == list(own["id"])
        for column in ("d0", "d1", "agreement"):
            assert scored[column].tolist() == own[column].tolist(), (threat, column)
        assert (scored["perturbed"] == (as_bool(own["attacked"]) | as_bool(own["carried"]))).all()
