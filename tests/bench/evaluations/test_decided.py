"""Work skipped because its outcome is decided: flips carried across radii, triplets proven robust,
clean embeddings shared by the units of a metric."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor

import lipsim_bench as bench
import lipsim_bench.evaluations.base as evaluation_base
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.decided import as_bool, l2_ball_radius, proven_robust
from lipsim_bench.metrics import (
    PerceptualMetric,
    bound_proven_by_project,
    create_metric,
    register_metric,
    unregister_metric,
)
from lipsim_bench.metrics.lipsim.metric import LipSim
from lipsim_bench.metrics.pixel import PixelL2
from lipsim_bench.metrics.weights import load_bundled
from lipsim_bench.run.spec import VERIFY_ENV
from tests.bench.evaluations.test_smoothing import embedded

EPS = [0.25, 0.5, 1.0, 2.0]


def _attack_rows(result: bench.Evaluated, metric: str = "pixel-l2") -> pd.DataFrame:
    t = result.triplets
    return t[(t.metric == metric) & (t.evaluation == "apgd")].copy()


def _one_decision_each(rows: pd.DataFrame) -> None:
    """A correct triplet is attacked, carried or proven, exactly one; an incorrect one none."""
    work = np.stack([as_bool(rows[c]) for c in ("attacked", "carried", "proven")]).astype(int).sum(axis=0)
    correct = as_bool(rows["correct"])
    assert (work[correct] == 1).all() and (work[~correct] == 0).all()


def test_flips_carry_to_larger_radii_and_scores_are_monotone() -> None:
    result = bench.evaluate("pixel-l2", "sample", ["natural", "apgd"], n=60, eps=EPS, apgd={"steps": 20})
    rows = _attack_rows(result)
    _one_decision_each(rows)
    by_eps = {eps: part.set_index("id") for eps, part in rows.groupby("eps")}
    for small, large in zip(EPS, EPS[1:]):
        before, after = by_eps[small], by_eps[large]
        flipped_before = before.index[as_bool(before["flipped"])]
        carried = after.index[as_bool(after["carried"])]
        assert list(carried) == list(flipped_before)  # every earlier flip is carried, nothing else
        assert as_bool(after.loc[carried, "flipped"]).all()
        assert (after.loc[carried, "delta_norm"] == before.loc[carried, "delta_norm"]).all()
        assert (after.loc[carried, "delta_norm"] <= small * (1 + 1e-6)).all()
        assert not as_bool(after.loc[carried, "attacked"]).any()
    scores = result.scores[(result.scores.evaluation == "apgd")].sort_values("eps").score.tolist()
    assert scores == sorted(scores, reverse=True)
    assert len(carried) > 0  # the test would prove nothing on a set where no flip happens


def test_carry_false_restores_independent_radii() -> None:
    result = bench.evaluate("pixel-l2", "sample", ["apgd"], n=40, eps=[0.5, 2.0], apgd={"steps": 10, "carry": False})
    rows = _attack_rows(result)
    assert not as_bool(rows["carried"]).any()
    keys = [r["unit"]["settings"] for r in result.records]
    assert all("builds_on" not in k for k in keys)


def test_radii_given_in_any_order_still_build_on_the_smaller(tmp_path: Path) -> None:
    result = bench.evaluate("pixel-l2", "sample", ["apgd"], n=40, eps=[2.0, 0.5, 1.0], apgd={"steps": 10})
    settings = {r["threat"]["eps"]: r["unit"]["settings"] for r in result.records}
    keys = {r["threat"]["eps"]: r["key"] for r in result.records}
    assert "builds_on" not in settings[0.5]
    assert settings[1.0]["builds_on"] == keys[0.5] and settings[2.0]["builds_on"] == keys[1.0]
    assert [r["threat"]["eps"] for r in result.records] == [2.0, 0.5, 1.0]  # table order as given


def test_a_stored_smaller_radius_is_carried_from_its_csv(tmp_path: Path) -> None:
    first = bench.evaluate("pixel-l2", "sample", ["apgd"], n=40, eps=[0.5, 1.0], apgd={"steps": 10}, out=tmp_path)
    second = bench.evaluate("pixel-l2", "sample", ["apgd"], n=40, eps=[0.5, 1.0, 2.0], apgd={"steps": 10}, out=tmp_path)
    assert second.reuse_summary().startswith("reused 2 of 3")
    rows = _attack_rows(second)
    at1 = rows[rows.eps == 1.0].set_index("id")
    at2 = rows[rows.eps == 2.0].set_index("id")
    assert list(at2.index[as_bool(at2["carried"])]) == list(at1.index[as_bool(at1["flipped"])])
    pd.testing.assert_frame_equal(
        _attack_rows(first).reset_index(drop=True), rows[rows.eps < 2].reset_index(drop=True), check_dtype=False
    )


def test_proven_robust_triplets_are_skipped_only_outside_verification(monkeypatch) -> None:
    monkeypatch.delenv(VERIFY_ENV, raising=False)
    skipped = bench.evaluate(
        "lipsim-tiny",
        "sample",
        ["certified", "apgd"],
        n=40,
        eps=[0.25, 1.0],
        apgd={"steps": 20},
        certified={"eps": (0.25, 1.0)},
    )
    verified = bench.evaluate(
        "lipsim-tiny",
        "sample",
        ["certified", "apgd"],
        n=40,
        eps=[0.25, 1.0],
        apgd={"steps": 20},
        certified={"eps": (0.25, 1.0)},
        verify=True,
    )
    rows, checked = _attack_rows(skipped, "lipsim-tiny"), _attack_rows(verified, "lipsim-tiny")
    _one_decision_each(rows)
    assert not as_bool(checked["proven"]).any()
    radius = skipped.triplets[skipped.triplets.evaluation == "certified"].drop_duplicates("id").set_index("id").radius
    proven = rows[as_bool(rows["proven"])]
    assert len(proven) > 0
    assert (radius.loc[proven.id].to_numpy() > proven.eps.to_numpy()).all()
    assert (proven.delta_norm == 0).all() and not as_bool(proven["flipped"]).any()
    # the attack of verification mode confirms every proof: no proven triplet is flipped there
    confirm = checked.set_index(["eps", "id"]).loc[list(zip(proven.eps, proven.id))]
    assert not as_bool(confirm["flipped"]).any()
    # the keys differ (the rows do), and each skipping unit says what it skipped
    attack_keys = [
        {r["key"] for r in result.records if r["evaluation"]["name"] == "apgd"} for result in (skipped, verified)
    ]
    assert attack_keys[0].isdisjoint(attack_keys[1])
    assert any("robust by the project's certificate" in line for line in skipped.markdown.splitlines())


def test_a_declared_bound_is_never_a_reason_to_skip(monkeypatch) -> None:
    """A plugin's Lipschitz bound is a claim: its triplets keep being attacked (and checked)."""
    monkeypatch.delenv(VERIFY_ENV, raising=False)

    class DeclaredPixel(PixelL2):  # same numbers as pixel-l2, but the bound is the plugin's word
        pass

    register_metric("declared-pixel", description="test")(DeclaredPixel)
    try:
        result = bench.evaluate("declared-pixel", "sample", ["apgd"], n=30, eps=[0.25], apgd={"steps": 5})
    finally:
        unregister_metric("declared-pixel")
    rows = _attack_rows(result, "declared-pixel")
    assert not as_bool(rows["proven"]).any() and as_bool(rows["attacked"]).sum() == as_bool(rows["correct"]).sum()


def test_verification_mode_catches_a_broken_project_bound(monkeypatch) -> None:
    """With a 1000x too small bound the certificate claims huge radii: skipping would hide it, verification fails the run."""
    monkeypatch.setattr(PixelL2, "lipschitz", 1e-3)
    with pytest.raises(BenchError, match="certificate violated"):
        bench.evaluate("pixel-l2", "sample", ["apgd"], n=60, eps=[2.0], apgd={"steps": 20}, verify=True)
    monkeypatch.delenv(VERIFY_ENV, raising=False)
    result = bench.evaluate("pixel-l2", "sample", ["apgd"], n=60, eps=[2.0], apgd={"steps": 20})
    rows = _attack_rows(result)
    # skipping trusts the project's own bound (nothing is attacked, nothing caught): hence --verify in the tests
    assert as_bool(rows["proven"]).sum() == as_bool(rows["correct"]).sum() > 0


def test_linf_balls_are_proven_through_the_enclosing_l2_ball() -> None:
    assert l2_ball_radius("l2", 0.5, (3, 8, 8)) == 0.5
    assert l2_ball_radius("linf", 0.01, (3, 8, 8)) == pytest.approx(0.01 * np.sqrt(192))


def test_clean_embeddings_are_computed_once_per_metric_and_batch(monkeypatch) -> None:
    calls: list[int] = []
    real = evaluation_base._embed_batch

    def counting(metric, batch, device, name):
        calls.append(len(batch["id"]))
        return real(metric, batch, device, name)

    monkeypatch.setattr(evaluation_base, "_embed_batch", counting)
    bench.evaluate(
        ["pixel-l2", "lipsim-tiny"],
        "sample",
        ["natural", "certified", "apgd"],
        n=30,
        eps=[0.5, 1.0],
        apgd={"steps": 2},
        batch_size=20,
    )
    assert calls == [20, 10, 20, 10]  # two batches per metric, whatever the number of units


def test_cached_embeddings_give_the_numbers_of_a_fresh_forward(monkeypatch) -> None:
    shared = bench.evaluate("lipsim-tiny", "sample", ["natural", "certified"], n=30)
    monkeypatch.setenv("LIPSIM_BENCH_EMBED_CACHE_MB", "0")  # nothing fits: every unit embeds again
    fresh = bench.evaluate("lipsim-tiny", "sample", ["natural", "certified"], n=30)
    pd.testing.assert_frame_equal(shared.scores, fresh.scores)
    pd.testing.assert_frame_equal(shared.triplets, fresh.triplets)


# -- the scenario: a plugin's bound, however it is attached, never spares an attack -------------------


class Underclaimed(LipSim):
    """A plugin's LipSim subclass whose bound is the true one divided by ``factor`` (what a plugin may claim)."""

    factor = 5.0

    def lipschitz_for(self, height: int, width: int) -> float:
        return super().lipschitz_for(height, width) / self.factor


def _underclaimed(factor: float):
    def build() -> LipSim:
        metric = Underclaimed("tiny")
        metric.factor = factor
        return load_bundled(metric, "lipsim-tiny")

    build.__annotations__["return"] = Underclaimed
    return build


def test_a_plugin_bound_5x_too_small_is_refused_by_the_probe_and_never_skips(monkeypatch) -> None:
    """The issue's plugin: a LipSim subclass with a bound 5x too small. Its own image pairs already move its embedding
    faster than the bound allows: refused in one line naming it, before any certified number. The skip rule, asked
    directly, proves nothing for it (a subclass of a project class is not the project's)."""
    monkeypatch.delenv(VERIFY_ENV, raising=False)
    register_metric("underclaimed-5x", description="test")(_underclaimed(5.0))
    try:
        with pytest.raises(BenchError) as info:
            bench.evaluate(
                "underclaimed-5x", "sample", ["natural", "certified", "apgd"], n=20, eps=[0.5], apgd={"steps": 2}
            )
        message = str(info.value)
        assert "\n" not in message and "'underclaimed-5x'" in message and "the bound is false" in message
        metric = create_metric("underclaimed-5x")
        item = embedded(
            metric,
            *(torch.rand(6, 3, 64, 64, generator=torch.Generator().manual_seed(s)) for s in range(3)),
            torch.full((6,), 0.9),
        )
        assert (
            not bound_proven_by_project(metric) and not proven_robust(metric, item, "l2", 1e-6, "underclaimed-5x").any()
        )
    finally:
        unregister_metric("underclaimed-5x")


def test_a_plugin_bound_too_small_for_the_probe_is_attacked_everywhere_and_marked(monkeypatch) -> None:
    """3.5x too small passes the probe on these images: every correct triplet is attacked (none proven), and its
    certified cells carry the mark and the footer; lipsim-tiny in the same run still skips what the project proves."""
    monkeypatch.delenv(VERIFY_ENV, raising=False)
    register_metric("underclaimed", description="test")(_underclaimed(3.5))
    try:
        result = bench.evaluate(
            ["underclaimed", "lipsim-tiny"],
            "sample",
            ["natural", "certified", "apgd"],
            n=40,
            eps=[0.5],
            apgd={"steps": 5},
        )
    finally:
        unregister_metric("underclaimed")
    plugin, project = _attack_rows(result, "underclaimed"), _attack_rows(result, "lipsim-tiny")
    _one_decision_each(plugin)
    assert (
        not as_bool(plugin["proven"]).any()
        and as_bool(plugin["attacked"]).sum() == as_bool(plugin["correct"]).sum() > 0
    )
    assert as_bool(project["proven"]).sum() > 0
    rows = {line.split("|")[1].strip(): line for line in result.markdown.splitlines() if line.startswith("| ")}
    certified = [i for i, cell in enumerate(rows["metric"].split("|")) if cell.strip().startswith("certified")]
    assert certified and all(rows["underclaimed"].split("|")[i].strip().endswith("(\u2020)") for i in certified)
    assert (
        "\u2020" not in rows["lipsim-tiny"] and "(\u2020)" not in rows["underclaimed"].split("|")[2]
    )  # natural: unmarked
    assert (
        "- (\u2020) bound declared by underclaimed, not verified by the project; run an attack or --verify"
        in result.markdown
    )
    record = next(
        r for r in result.records if r["unit"]["metric"] == "underclaimed" and r["evaluation"]["name"] == "certified"
    )
    assert all(s["lipschitz_bound"] == "declared" for s in record["scores"])


class _Identity(PerceptualMetric):
    """pixel-l2's numbers from a plugin: identity embedding, Euclidean distance, true bound 1."""

    distance_kind = "l2"

    def embed(self, x: Tensor) -> Tensor:
        return x

    def distance(self, e_a: Tensor, e_b: Tensor) -> Tensor:
        return (e_a - e_b).flatten(1).norm(dim=1)


class OnClass(_Identity):
    lipschitz = 1.0


class OnInstance(_Identity):
    def __init__(self) -> None:
        super().__init__()
        self.lipschitz = 1.0


class ForSize(_Identity):  # lipschitz stays None: the bound comes from lipschitz_for alone
    def lipschitz_for(self, height: int, width: int) -> float:
        return 1.0


def test_a_bound_on_the_instance_or_from_lipschitz_for_counts_as_one_on_the_class(monkeypatch) -> None:
    """The three ways of declaring a bound give the same certified and attack scores, and the same mark."""
    monkeypatch.delenv(VERIFY_ENV, raising=False)
    names = {"on-class": OnClass, "on-instance": OnInstance, "for-size": ForSize}
    for name, cls in names.items():
        register_metric(name, description="test")(cls)
    try:
        result = bench.evaluate(
            list(names),
            "sample",
            ["natural", "certified", "apgd"],
            n=30,
            eps=[0.5],
            apgd={"steps": 3},
            certified={"eps": (0.25, 1.0)},
        )
    finally:
        for name in names:
            unregister_metric(name)

    def scores(name: str) -> list[tuple]:
        own = result.scores[result.scores.metric == name]
        return [(r.evaluation, r.norm, r.eps, r.score) for r in own.fillna({"eps": -1.0, "norm": ""}).itertuples()]

    assert len([s for s in scores("on-class") if s[0] == "certified"]) == 2
    assert scores("on-instance") == scores("on-class") and scores("for-size") == scores("on-class")
    for name in names:
        assert f"(\u2020) bound declared by {name}," in result.markdown
        assert not as_bool(_attack_rows(result, name)["proven"]).any()


@pytest.mark.parametrize(
    ("kind", "distance", "fix"),
    [
        ("l2", None, "set distance_kind = 'cosine'"),  # the inherited 1 - cos under an l2 claim
        ("cosine", lambda self, a, b: (a - b).flatten(1).norm(dim=1), "set distance_kind = 'l2'"),
        ("l2", lambda self, a, b: (a - b).flatten(1).abs().sum(dim=1), "override distance() to match"),
        ("lpips", None, "has no certificate"),
    ],
    ids=["l2-over-cosine", "cosine-over-l2", "l1", "unknown-kind"],
)
def test_a_declared_distance_kind_unlike_the_distance_is_refused(kind: str, distance, fix: str) -> None:
    attrs = {"embed": lambda self, x: x.flatten(1), "lipschitz": 1.0, "distance_kind": kind}
    if distance is not None:
        attrs["distance"] = distance
    register_metric("mislabelled", description="test")(type("Mislabelled", (PerceptualMetric,), attrs))
    try:
        with pytest.raises(BenchError) as info:
            bench.evaluate("mislabelled", "sample", ["certified"], n=10)
    finally:
        unregister_metric("mislabelled")
    message = str(info.value)
    assert "\n" not in message and "metric 'mislabelled'" in message and fix in message
