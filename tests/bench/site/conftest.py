"""A tiny leaderboard built once per session from real records: three metrics of the bundled sample-test
reference (natural, APGD, certified), the worst case of two of them from the ensemble reference (same protocol),
pixel-l2 perturbing x0 (another protocol), and a small published-cells file of the calibration format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
REFERENCE = ROOT / "results" / "reference"
METRICS = ("pixel-l2", "convsim-tiny", "lipsim-tiny")

#: A published file of bench/report/published.json's shape: one metric the runs hold, one they do not.
PUBLISHED = {
    "format": 1,
    "sources": {
        "paper2024": {
            "title": "A <b>paper</b> on metrics",
            "authors": ["A. Author", "B. Author"],
            "year": 2024,
            "where": "a venue",
            "url": "https://example.org/paper",
        }
    },
    "cells": [
        {"source": "paper2024", "metric": "lipsim-tiny", "dataset": "sample", "split": "test", "evaluation": "natural",
         "norm": None, "eps": None, "score": 12.34, "n": 100, "protocol": {"steps": None, "weights": "official"}},
        {"source": "paper2024", "metric": "lipsim-tiny", "dataset": "sample", "split": "test", "evaluation": "apgd",
         "norm": "l2", "eps": 0.5, "score": 43.21, "n": 100, "protocol": {"steps": 100, "weights": "official"}},
        {"source": "paper2024", "metric": "only-published", "dataset": "sample", "split": "test",
         "evaluation": "natural", "norm": None, "eps": None, "score": 77.77, "n": None, "protocol": None},
    ],
}  # fmt: skip


def copy_records(source: Path, target: Path, keep) -> Path:
    """A run folder holding the records of ``source`` that ``keep(metric, evaluation)`` accepts (each record is
    self-contained: its JSON and its per-triplet CSV)."""
    (target / "records").mkdir(parents=True)
    for path in sorted((source / "records").glob("*.json")):
        unit = json.loads(path.read_text())["unit"]
        if keep(unit["metric"], unit["evaluation"]):
            shutil.copy(path, target / "records" / path.name)
            shutil.copy(path.with_suffix(".triplets.csv"), target / "records" / path.with_suffix(".triplets.csv").name)
    return target


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("runs")
    return [
        copy_records(
            REFERENCE / "sample-test",
            base / "default",
            lambda m, e: m in METRICS and e in ("natural", "apgd", "certified"),
        ),
        copy_records(
            REFERENCE / "sample-ensemble", base / "ensemble", lambda m, e: m in METRICS[:2] and e == "worst-case"
        ),
        copy_records(REFERENCE / "sample-ensemble-x0", base / "x0", lambda m, e: m == "pixel-l2" and e == "natural"),
    ]


@pytest.fixture(scope="session")
def published_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("published") / "published.json"
    path.write_text(json.dumps(PUBLISHED))
    return path


@pytest.fixture(scope="session")
def tiny_site(tiny_runs: list[Path], published_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of the tiny runs, written by the command itself."""
    from lipsim_bench.cli import main

    out = tmp_path_factory.mktemp("site") / "site"
    assert main(["leaderboard", *map(str, tiny_runs), "--out", str(out), "--published", str(published_file)]) == 0
    return out
