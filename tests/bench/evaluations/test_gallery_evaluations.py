"""Clean and certified gallery evaluations on a tiny gallery: recall, map, recall/stability/knn-certified, knn."""

from __future__ import annotations

import math

import pytest
import torch

from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.base import Context
from lipsim_bench.evaluations.certified import BOUND_COLUMN, DECLARED
from lipsim_bench.evaluations.gallery_batches import gallery_batches
from lipsim_bench.evaluations.knn import Knn, KnnCertified, KnnOptions, knn_vote
from lipsim_bench.evaluations.retrieval_certified import (
    GalleryCertifiedOptions,
    RecallCertified,
    StabilityCertified,
    default_certified_eps,
)
from lipsim_bench.evaluations.retrieval_clean import MeanAveragePrecision, Recall, RecallOptions
from lipsim_bench.metrics import create_metric
from tests.bench.evaluations.gallery_toys import CountingL2, SquaredL2, tiny_loader

CPU = torch.device("cpu")
EPS = (0.0, 0.02, 0.05, 0.1, 0.5)


def _run(evaluation, metric, name: str = "m"):
    loader = tiny_loader()
    return evaluation.run(
        metric, gallery_batches(metric, loader, CPU, "t", name), Context(CPU, 0, name)
    ), loader.dataset


def _brute_ranks(data) -> torch.Tensor:
    d = torch.cdist(data.query_tensor.flatten(1).double(), data.gallery_tensor.flatten(1).double())
    order = d.argsort(dim=1)
    relevant = torch.tensor([[g.label == q.label for g in data.gallery] for q in data.queries])
    return relevant.gather(1, order).double().argmax(dim=1) + 1


def test_recall_and_map_count_ranks_of_relevant_items() -> None:
    rows, data = _run(Recall(RecallOptions(k=1)), create_metric("pixel-l2"))
    assert (
        rows["evaluation"].unique().tolist() == ["recall(k=1)"] and rows["rank"].tolist() == _brute_ranks(data).tolist()
    )
    assert (rows["agreement"] == (rows["rank"] <= 1)).all() and rows["agreement"].between(0, 1).all()
    rows3, _ = _run(Recall(RecallOptions(k=3)), create_metric("pixel-l2"))
    assert (rows3["agreement"] >= rows["agreement"]).all() and (rows3["agreement"] == (rows3["rank"] <= 3)).all()
    mean_ap, _ = _run(MeanAveragePrecision(), create_metric("pixel-l2"))
    assert (mean_ap["agreement"] == mean_ap["ap"]).all() and (mean_ap["agreement"] <= 1).all()
    note = Recall().notes("pixel-l2", rows)
    assert (
        len(note) == 1
        and "Recall@5" in note[0]
        and "mAP" in note[0]
        and Recall(RecallOptions(k=3)).notes("x", rows) == []
    )
    with pytest.raises(BenchError, match=r"recall.k must be between 1 and the gallery's size \(12\), got 13"):
        _run(Recall(RecallOptions(k=13)), create_metric("pixel-l2"))


@pytest.mark.parametrize("metric_name", ["pixel-l2", "lipsim-tiny"])
def test_certified_recall_never_exceeds_clean_recall_and_falls_with_eps(metric_name: str) -> None:
    metric = create_metric(metric_name)
    clean, _ = _run(Recall(), metric, metric_name)
    for cls in (RecallCertified, StabilityCertified):
        rows, _ = _run(cls(GalleryCertifiedOptions(eps=EPS)), metric, metric_name)
        assert BOUND_COLUMN not in rows.columns  # the project's own bound: plain cells, no mark
        by_eps = rows.pivot(index="id", columns="eps", values="agreement")
        assert (by_eps.diff(axis=1).iloc[:, 1:] <= 0).all().all()  # a larger radius certifies no more
        if cls is RecallCertified:
            assert (by_eps[0.0].values <= clean.set_index("id").loc[by_eps.index, "agreement"].values).all()
        radius = rows.drop_duplicates("id")["radius"]
        assert (radius >= 0).all() and radius.notna().all()
        note = cls(GalleryCertifiedOptions(eps=EPS)).notes(metric_name, rows)
        count = int((radius > 0).sum())
        assert note[0].startswith(f"{metric_name} {cls.name}: {count}/8 certified at some radius")
        assert len(note) == 1
        assert bool(cls(GalleryCertifiedOptions(eps=EPS)).measure()) == (cls is StabilityCertified)  # not Recall@1
    assert Recall().notes(metric_name, clean)


def test_a_declared_bound_marks_the_cells_and_a_false_one_is_refused() -> None:
    rows, _ = _run(RecallCertified(GalleryCertifiedOptions(eps=EPS)), CountingL2(), "toy")
    assert (rows[BOUND_COLUMN] == DECLARED).all()
    evaluation = RecallCertified(GalleryCertifiedOptions(eps=EPS))
    assert evaluation.score(rows, "test")[0][BOUND_COLUMN] == DECLARED
    assert any("bound declared by toy" in line for line in evaluation.notes("toy", rows))

    class Stretched(CountingL2):
        def embed(self, x):
            return 10 * x.flatten(1)  # 10-Lipschitz, declares 1

    with pytest.raises(BenchError, match="'stretched' declares a Lipschitz bound of 1 .* the bound is false"):
        _run(RecallCertified(), Stretched(), "stretched")

    class Squared(SquaredL2):
        lipschitz = 1.0

    with pytest.raises(BenchError, match="'squared' declares distance_kind 'l2'"):
        _run(RecallCertified(), Squared(), "squared")


def test_the_certificate_holds_against_a_perturbation_just_inside_the_radius() -> None:
    """pixel-l2 (embedding = pixels, L = 1): each query moved 0.999 radius toward its nearest irrelevant item keeps a
    relevant top-1; the certified count at eps is the count whose radius exceeds it."""
    metric = create_metric("pixel-l2")
    rows, data = _run(RecallCertified(GalleryCertifiedOptions(eps=(0.04,))), metric, "pixel-l2")
    q, g = data.query_tensor.flatten(1).double(), data.gallery_tensor.flatten(1).double()
    relevant = torch.tensor([[x.label == y.label for x in data.gallery] for y in data.queries])
    radius = torch.tensor(rows["radius"].values)
    for i in range(len(q)):
        if not 0 < radius[i] < math.inf:
            continue
        loser = torch.where(relevant[i], math.inf, (q[i] - g).norm(dim=1)).argmin()
        step = g[loser] - q[i]
        moved = q[i] + step / step.norm() * 0.999 * radius[i]
        assert relevant[i, (moved - g).norm(dim=1).argmin()]
    assert rows["agreement"].tolist() == (radius > 0.04).double().tolist()


def test_knn_votes_break_ties_to_the_nearer_label() -> None:
    order = torch.tensor([[0, 1, 2, 3], [2, 0, 3, 1]])
    codes = torch.tensor([0, 1, 1, 0])  # gallery labels
    predicted, voter = knn_vote(order, codes, 2)
    assert predicted.tolist() == [0, 1] and voter.tolist() == [0, 2]  # 1-1 ties: the nearest neighbour's label
    predicted, _ = knn_vote(order, codes, 3)
    assert predicted.tolist() == [1, 0]  # 2-1 majorities


def test_knn_and_certified_knn() -> None:
    metric = create_metric("pixel-l2")
    rows, data = _run(Knn(KnnOptions(k=1)), metric, "pixel-l2")
    recall, _ = _run(Recall(), metric, "pixel-l2")
    assert rows["agreement"].tolist() == recall["agreement"].tolist()  # labels are the relevance here
    assert rows["prediction"].tolist() == [data.gallery[int(i)].label for i in rows["top1"]]
    certified, _ = _run(KnnCertified(GalleryCertifiedOptions(eps=EPS)), metric, "pixel-l2")
    at_zero = certified[certified["eps"] == 0.0]
    assert (at_zero["agreement"].values <= rows["agreement"].values).all()
    assert Knn.tasks == ("knn",) and KnnCertified.tasks == ("knn",) and RecallCertified.tasks == ("retrieval",)


def test_default_certified_radii_are_the_attack_radii_and_the_papers() -> None:
    eps = RecallCertified.default_options("sample-retrieval", 0)["eps"]
    assert eps == tuple(sorted(set(eps))) and {36 / 255, 72 / 255, 108 / 255} <= set(eps) and 0.25 in eps
    assert default_certified_eps("anything") == tuple(sorted(set(default_certified_eps("anything"))))
