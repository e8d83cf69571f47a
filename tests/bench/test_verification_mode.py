"""The default protocol on the bundled models, in verification mode and in the default (skipping) mode.

Verification mode attacks every triplet, the proven-robust ones too, and checks every certificate
against the flips found (a violation fails the run). Because undecided triplets keep the random
start they would get among all correct ones, skipping changes no robust score: the two modes agree.
"""

from __future__ import annotations

import pandas as pd

import lipsim_bench as bench
from lipsim_bench.run.spec import VERIFY_ENV

BUNDLED = ["pixel-l2", "convsim-tiny", "lipsim-tiny"]
PROTOCOL = {"n": 30, "eps": [0.25, 0.5, 1.0, 2.0], "apgd": {"steps": 20}, "batch_size": 15}


def _robust(result: bench.Evaluated) -> pd.DataFrame:
    scores = result.scores[result.scores.kind == "attack"]
    return scores[["metric", "eps", "score"]].sort_values(["metric", "eps"]).reset_index(drop=True)


def test_verification_mode_checks_every_certificate_and_skipping_changes_no_score(monkeypatch) -> None:
    monkeypatch.delenv(VERIFY_ENV, raising=False)
    evaluations = ["natural", "certified", "apgd"]
    verified = bench.evaluate(BUNDLED, "sample", evaluations, verify=True, **PROTOCOL)  # raises on any violation
    skipping = bench.evaluate(BUNDLED, "sample", evaluations, **PROTOCOL)
    proven = skipping.triplets[skipping.triplets.evaluation == "apgd"]["proven"].astype(bool)
    assert proven.sum() > 0  # the comparison means something only if something was skipped
    pd.testing.assert_frame_equal(_robust(verified), _robust(skipping))
    for metric, part in _robust(skipping).groupby("metric"):
        assert list(part.score) == sorted(part.score, reverse=True), metric  # monotone by construction
