"""A robust score that rises with more attack steps or restarts is a footer WARNING (AutoAttack's masking check),
only beyond the sign test's noise and only between records that differ in nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lipsim_bench.report.collect import SCORE_COLUMNS, Collected
from lipsim_bench.report.masking import stronger_attack_notes
from lipsim_bench.report.outputs import write_outputs

IDS = [str(i) for i in range(20)]


def _settings(**options: object) -> str:
    return json.dumps(
        {"data": "d", "weights": "w", "options": {"loss": "ce", "restarts": 1, **options}}, sort_keys=True
    )


def _frames(
    strong: list[float], weak: list[float], weak_options: dict | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``apgd`` (100 steps) and ``apgd(steps=5)`` at l2 0.5, with these per-triplet agreements."""
    columns = {
        "apgd": (strong, _settings(steps=100)),
        "apgd(steps=5)": (weak, _settings(**(weak_options or {"steps": 5}))),
    }
    scores = pd.DataFrame(
        [
            {"metric": "m", "dataset": "sample", "split": "test", "evaluation": e, "norm": "l2", "eps": 0.5,
             "score": 100 * sum(a) / len(a), "n": len(a), "kind": "attack", "seed": 0, "settings": s}
            for e, (a, s) in columns.items()
        ]
        + [{"metric": "m", "dataset": "sample", "split": "test", "evaluation": "natural", "norm": None, "eps": None,
            "score": 100.0, "n": 20, "kind": "clean", "seed": 0, "settings": _settings()}]
    )  # fmt: skip
    triplets = pd.DataFrame(
        [
            {"metric": "m", "dataset": "sample", "split": "test", "evaluation": e, "norm": "l2", "eps": 0.5, "id": i,
             "agreement": a}
            for e, (agreements, _) in columns.items()
            for i, a in zip(IDS, agreements)
        ]
    )  # fmt: skip
    return scores.reindex(columns=SCORE_COLUMNS), triplets  # no interval columns: none drawn


def test_more_steps_robust_on_ten_more_triplets_is_a_warning() -> None:
    strong, weak = [1.0] * 15 + [0.0] * 5, [1.0] * 5 + [0.0] * 15
    (line,) = stronger_attack_notes(*_frames(strong, weak))
    assert line.startswith("WARNING: m l2 0.5: the robust score rises with more steps or restarts")
    assert "apgd(steps=5) 25.00 -> apgd 75.00" in line and "10 agree more under the stronger attack, 0 under" in line
    assert "p = 0.00098" in line and "gradient masking" in line
    # the same numbers the other way round are the expected direction: nothing to say
    assert stronger_attack_notes(*_frames(weak, strong)) == []


def test_noise_or_another_setting_is_silent() -> None:
    # 3 triplets one way, 1 the other: p = 0.31, within the draws' noise
    strong, weak = [1.0] * 3 + [0.0] * 17, [0.0] * 3 + [1.0] + [0.0] * 16
    assert stronger_attack_notes(*_frames(strong, weak)) == []
    # a different loss is not "the same attack with fewer steps"
    big = ([1.0] * 15 + [0.0] * 5, [1.0] * 5 + [0.0] * 15)
    assert stronger_attack_notes(*_frames(*big, weak_options={"steps": 5, "loss": "margin"})) == []
    # more steps but fewer restarts: neither is the stronger one
    assert stronger_attack_notes(*_frames(*big, weak_options={"steps": 5, "restarts": 4})) == []


def test_the_warning_reaches_the_table_footer(tmp_path: Path) -> None:
    scores, triplets = _frames([1.0] * 15 + [0.0] * 5, [1.0] * 5 + [0.0] * 15)
    write_outputs(tmp_path, "sample", "test", Collected(scores, triplets), "provenance: test")
    assert "the robust score rises with more steps or restarts" in (tmp_path / "scores.md").read_text()
