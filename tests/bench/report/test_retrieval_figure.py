"""The retrieval examples figure: drawn from an attack's rows, a tiny CSV retrieval set and stored records (one
metric kept its adversarial queries, the other did not); flipped queries first, the note where nothing is stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lipsim_bench.datasets import create_dataset
from lipsim_bench.errors import BenchError
from lipsim_bench.evaluations.adversarial import ADVERSARIAL
from lipsim_bench.evaluations.twoafc import score_rows
from lipsim_bench.report import retrieval_figure
from lipsim_bench.report.retrieval_figure import NOT_STORED, collect, draw
from lipsim_bench.run.records import RecordStore, Unit

GALLERY = [f"g{i}" for i in range(8)]
QUERIES = ["q0", "q1", "q2", "q3", "q4"]


def tiny_set(root: Path) -> str:
    """Five queries and eight gallery images (8x8 PNGs); query i's relevant items are g_i and g_(i+1)."""
    rng = np.random.default_rng(0)
    root.mkdir()
    for name in GALLERY + QUERIES:
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"{name}.png")
    (root / "gallery.csv").write_text("id,path\n" + "".join(f"{g},{g}.png\n" for g in GALLERY))
    (root / "queries.csv").write_text("id,path\n" + "".join(f"{q},{q}.png\n" for q in QUERIES))
    pairs = [(q, GALLERY[i + j]) for i, q in enumerate(QUERIES) for j in (0, 1)]
    (root / "relevance.csv").write_text("query_id,gallery_id\n" + "".join(f"{q},{g}\n" for q, g in pairs))
    return f"retrieval:{root}"


def attack_rows(metric: str, eps: float, flipped: set[str]) -> pd.DataFrame:
    """recall-apgd rows: every query's top-5 starts at its relevant g_i; flipped ones lead with g7 after the attack."""
    top5 = [" ".join(GALLERY[i : i + 5]) for i in range(len(QUERIES))]
    adv = [("g7 " + " ".join(GALLERY[i : i + 4])) if q in flipped else t for i, (q, t) in enumerate(zip(QUERIES, top5))]
    return pd.DataFrame(
        {
            "evaluation": "recall-apgd",
            "norm": "l2",
            "eps": eps,
            "group": "test",
            "id": QUERIES,
            "agreement": [0.0 if q in flipped else 1.0 for q in QUERIES],
            "flipped": [q in flipped for q in QUERIES],
            "attacked": True,
            "top5": top5,
            "adv_top5": adv,
        }
    )


def store_unit(
    run: Path, spec: str, metric: str, eps: float, rows: pd.DataFrame, x_adv: dict[int, torch.Tensor]
) -> None:
    data = create_dataset(spec, "test")
    unit = Unit(metric, "retrieval", "test", None, "recall-apgd", {"data": data.fingerprint(), "eps": eps})
    body = {
        "applies": True,
        "evaluation": {"name": "recall-apgd", "kind": "attack", "version": 1, "output_csv": None},
        "threat": {"norm": "l2", "eps": eps},
        "position": 0,
        "rows": len(rows),
        "scores": score_rows(rows, split="test"),  # what the report checks the rows against
        "notes": [],
        "config": {"dataset": spec, "n": None},
    }
    store = RecordStore(run)
    store.save(unit, body, rows)
    if x_adv:
        positions = sorted(x_adv)
        store.save_artifact(
            unit,
            ADVERSARIAL,
            {"position": torch.tensor(positions), "x_adv": torch.stack([x_adv[p] for p in positions])},
        )


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, pd.DataFrame, torch.Tensor]:
    spec = tiny_set(tmp_path / "data")
    run = tmp_path / "run"
    (run / "records").mkdir(parents=True)
    adv = torch.full((3, 224, 224), 0.5)  # the CSV layout reads images at 224x224
    parts = []
    for metric, kept in (("lipsim-tiny", {3: adv}), ("pixel-l2", {})):
        for eps, flipped in ((0.25, {"q3"}), (0.5, {"q3", "q1"})):
            rows = attack_rows(metric, eps, flipped)
            store_unit(run, spec, metric, eps, rows, kept if eps == 0.5 else {})
            parts.append(rows.assign(metric=metric, dataset="retrieval", split="test"))
    return run, pd.concat(parts, ignore_index=True), adv


def test_flipped_queries_come_first_at_the_radius_with_most_flips(run: tuple[Path, pd.DataFrame, torch.Tensor]) -> None:
    folder, rows, adv = run
    examples = collect(folder, rows)
    assert (examples.norm, examples.eps, examples.flipped) == ("l2", 0.5, 4)
    assert [(s.query_id, s.metric) for s in examples.shown][::2] == [("q1", "lipsim-tiny"), ("q3", "lipsim-tiny"),
                                                                    ("q0", "lipsim-tiny")]  # fmt: skip
    q3 = {s.metric: s for s in examples.shown if s.query_id == "q3"}
    assert torch.equal(q3["lipsim-tiny"].adversarial, adv) and q3["lipsim-tiny"].note is None
    assert q3["pixel-l2"].adversarial is None and q3["pixel-l2"].note == NOT_STORED
    assert q3["pixel-l2"].adv_top == [7, 3, 4, 5, 6] and q3["pixel-l2"].relevant == {3, 4}
    assert q3["pixel-l2"].flipped and not [s for s in examples.shown if s.query_id == "q0"][0].flipped


def test_draw_writes_the_figure_and_says_what_was_not_stored(
    run: tuple[Path, pd.DataFrame, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, rows, _ = run
    texts: list[str] = []
    original = retrieval_figure.retrieval_figure

    def keep_texts(examples):  # the words the figure draws, read back from its artists
        fig = original(examples)
        texts.extend(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))
        return fig

    monkeypatch.setattr(retrieval_figure, "retrieval_figure", keep_texts)
    monkeypatch.setattr(retrieval_figure, "QUERIES", 1)  # two rows (one per metric) draw fast enough for a test
    assert draw(folder, rows) == ["retrieval_examples.png", "retrieval_examples.pdf"]
    assert (folder / "retrieval_examples.png").stat().st_size > 0 and (folder / "retrieval_examples.pdf").is_file()
    assert NOT_STORED in {" ".join(t.split()) for t in texts}  # wrapped to fit the panel
    assert any("4 (query, metric) pairs flipped at this radius; 1 queries shown" in t for t in texts)
    assert draw(folder, rows.drop(columns=["top5"])) == []  # rows of another evaluation: nothing drawn


def test_rows_naming_an_item_outside_the_gallery_are_one_line(run: tuple[Path, pd.DataFrame, torch.Tensor]) -> None:
    folder, rows, _ = run
    rows = rows.assign(adv_top5=rows["adv_top5"].str.replace("g7", "g99"))
    with pytest.raises(BenchError, match=r"neighbour 'g99' is not in the run's gallery"):
        collect(folder, rows)


def test_a_success_carried_from_the_smaller_radius_shows_the_query_found_there(tmp_path: Path) -> None:
    """q3 broke at 0.25 and was carried to 0.5 (not attacked there): lipsim-tiny kept its adversarial query at 0.25,
    pixel-l2 kept none. Before, both read "not attacked (a miss before the attack)"."""
    spec = tiny_set(tmp_path / "data")
    folder = tmp_path / "run"
    (folder / "records").mkdir(parents=True)
    adv = torch.full((3, 224, 224), 0.25)
    parts = []
    for metric, kept in (("lipsim-tiny", {3: adv}), ("pixel-l2", {})):
        small = attack_rows(metric, 0.25, {"q3"})
        large = attack_rows(metric, 0.5, {"q1", "q3"}).assign(carried=[q == "q3" for q in QUERIES])
        large["attacked"] = ~large["carried"]
        store_unit(folder, spec, metric, 0.25, small, kept)
        store_unit(folder, spec, metric, 0.5, large, {})
        parts += [r.assign(metric=metric, dataset="retrieval", split="test") for r in (small, large)]
    rows = pd.concat(parts, ignore_index=True)
    examples = collect(folder, rows.assign(flipped=rows["flipped"].astype(str)), count=2)  # as read back from CSV
    assert examples.eps == 0.5 and [s.query_id for s in examples.shown] == ["q1", "q1", "q3", "q3"]
    q3 = {s.metric: s for s in examples.shown if s.query_id == "q3"}
    assert q3["pixel-l2"].note == "found at l2 0.25 (not stored: rerun with --save-adversarial)"
    assert q3["lipsim-tiny"].note is None and torch.equal(q3["lipsim-tiny"].adversarial, adv)
    assert q3["lipsim-tiny"].found_at == "l2 0.25" and q3["pixel-l2"].adversarial is None
