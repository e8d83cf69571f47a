"""A tiny leaderboard built once per session from real records: three metrics of the bundled sample-test
reference (natural, APGD, certified), the worst case of two of them and the transfer rows of all three from the
ensemble reference (same protocol), pixel-l2 perturbing x0 (another protocol), and a small published-cells file of
the calibration format. Submitted entries: one written by `run_bench.py entry` from a tiny run (8 triplets), and a
hand-made "reported" one."""

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
            "authors": "A. Author and B. Author",
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
         "evaluation": "natural", "norm": None, "eps": None, "score": 77.77, "n": None, "protocol": {}},
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
            REFERENCE / "sample-ensemble",
            base / "ensemble",
            lambda m, e: (m in METRICS[:2] and e == "worst-case") or (m in METRICS and e == "transfer"),
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


@pytest.fixture(scope="session")
def entry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A re-evaluated entry written by `run_bench.py entry` (--out: its records copied beside it) from a tiny run:
    pixel-l2 on the first 8 bundled triplets, natural and 5-step APGD."""
    from lipsim_bench.cli import main

    base = tmp_path_factory.mktemp("entry")
    run = ["--n", "8", "--metrics", "pixel-l2", "--evaluations", "natural,apgd", "--set", "apgd.steps=5"]
    assert main([*run, "--out", str(base / "run")]) == 0
    entry = base / "sub" / "ENTRY.json"
    assert main(["entry", str(base / "run"), "--metric", "pixel-l2", "--out", str(entry)]) == 0
    return entry


#: The scores the hand-made reported entry claims: numbers no record holds, so a test can tell where they went.
CLAIMED = (11.11, 22.22, 33.33, 44.44, 55.55)


@pytest.fixture(scope="session")
def reported_entry(entry_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny entry hand-edited into a paper's claims: kind "reported", a paper, no records, its own scores."""
    entry = json.loads(entry_file.read_text())
    entry["kind"] = "reported"
    entry["paper"] = {"title": "Claimed <i>robust</i> pixels", "year": 2025, "url": "https://example.org/claim"}
    del entry["records"]
    for cell, score in zip(entry["cells"], CLAIMED, strict=True):
        del cell["record"]
        cell["score"] = score
        for key in ("ci_low", "ci_high", "ci_method"):
            cell.pop(key, None)
    path = tmp_path_factory.mktemp("claims") / "claims.json"
    path.write_text(json.dumps(entry))
    return path
