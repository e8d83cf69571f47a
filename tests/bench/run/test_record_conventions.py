"""Every result record stores its metric's stated conventions (with the weights' description), outside the key:
"not stated" for a plugin without them, "random-init" for a metric built with random weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lipsim_bench.cli import main
from lipsim_bench.metrics import PerceptualMetric, get_metric_spec, register_metric, unregister_metric
from lipsim_bench.metrics.conventions import NOT_STATED
from lipsim_bench.run.plan import RANDOM_WEIGHTS_ENV


def records(out: Path) -> dict[str, dict]:
    """metric -> its (single) record of the run in ``out``."""
    found = [json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))]
    return {r["unit"]["metric"]: r for r in found}


def tiny_run(capsys: pytest.CaptureFixture, out: Path, metrics: str) -> dict[str, dict]:
    argv = ["--metrics", metrics, "--evaluations", "natural", "--n", "4", "--batch-size", "4", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    return records(out)


class Toy(PerceptualMetric):
    """A mean-colour toy: no file, no conventions."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.randn(()))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x.mean(dim=(2, 3)) + 0.1


@pytest.fixture
def toy_metrics():
    """Two toys: one registered without conventions, one whose factory takes ``pretrained`` (random-weights runs)."""

    def toy_pretrained(pretrained: bool = True) -> Toy:
        return Toy()

    register_metric("test-unstated-run", description="toy")(Toy)
    register_metric("test-pretrained-run", description="toy")(toy_pretrained)
    yield
    unregister_metric("test-unstated-run")
    unregister_metric("test-pretrained-run")


def test_a_run_stores_each_metric_conventions_outside_the_key(
    capsys: pytest.CaptureFixture, tmp_path: Path, toy_metrics: None
) -> None:
    stored = tiny_run(capsys, tmp_path / "run", "pixel-l2,convsim-tiny,test-unstated-run")
    assert set(stored) == {"pixel-l2", "convsim-tiny", "test-unstated-run"}
    for name in ("pixel-l2", "convsim-tiny"):
        spec = get_metric_spec(name)
        assert stored[name]["conventions"] == {**spec.conventions.as_dict(), "weights": spec.weights}
        assert "conventions" not in json.dumps(stored[name]["unit"])  # the key's fields hold none of it
    unstated = stored["test-unstated-run"]["conventions"]
    assert unstated["input"] == unstated["mirrors"] == NOT_STATED and unstated["symmetric"] is None
    assert stored["convsim-tiny"]["provenance"]["packages"].keys() >= {"torch", "lpips", "timm", "stlpips-pytorch"}


def test_a_random_weights_run_says_so_in_the_conventions(
    capsys: pytest.CaptureFixture, tmp_path: Path, toy_metrics: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RANDOM_WEIGHTS_ENV, "1")
    stored = tiny_run(capsys, tmp_path / "run", "test-pretrained-run")
    (record,) = stored.values()
    assert record["conventions"]["weights"] == f"random-init ({RANDOM_WEIGHTS_ENV}=1), not none (no learned weights)"
