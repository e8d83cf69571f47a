"""The transfer matrix on the site (a page per protocol that ran the ``transfer`` evaluation: rows crafted on,
columns scored by, the diagonal each metric's own robust score), and the figures' fixed palette on the site."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lipsim_bench.formatting import format_eps
from lipsim_bench.report.palette import metric_style
from tests.bench.site.conftest import METRICS, REFERENCE
from tests.bench.site.html_tables import tables

PAGE = "transfer/sample-test-ref-n100.html"


def test_a_protocol_with_transfer_rows_links_its_matrix(tiny_site: Path) -> None:
    index = (tiny_site / "index.html").read_text()
    section = index[index.index('<section id="sample-test-ref-n100">') :]
    assert f'href="{PAGE}"' in section[: section.index("</section>")]
    assert "rows: crafted on; columns: scored by; the diagonal is each metric's own robust score" in index
    assert not (tiny_site / "transfer" / "sample-test-x0-n100.html").exists()  # no transfer unit ran there
    assert 'href="../transfer/sample-test-ref-n100.html"' in (tiny_site / "metrics" / "pixel-l2.html").read_text()


def test_the_matrix_is_the_runs_transfer_csv(tiny_site: Path) -> None:
    reference = pd.read_csv(REFERENCE / "sample-ensemble" / "transfer.csv")
    found = tables(tiny_site / PAGE)
    radii = sorted(reference["eps"].unique())
    assert len(found) == len(radii)
    text = (tiny_site / PAGE).read_text()
    for table, eps in zip(found, radii):
        assert table.section == re.sub(r"[^A-Za-z0-9._-]+", "-", f"apgd-l2-{format_eps(eps)}").strip("-.")
        assert table.headers == ["crafted on \\ scored by", *METRICS]  # columns: the metrics that scored
        part = reference[reference["eps"] == eps]
        sources = [row[0] for row in table.rows]  # rows: every source, the scoring metrics first (run order)
        assert sources[: len(METRICS)] == list(METRICS) and set(sources) == set(part["source"])
        for row in table.rows:
            for metric, shown in zip(METRICS, row[1:]):
                (score,) = part[(part["source"] == row[0]) & (part["metric"] == metric)]["score"]
                assert shown == f"{score:.1f}", (eps, row[0], metric)
    assert text.count('class="num diagonal"') == len(radii) * len(METRICS)
    assert text.count("<caption>rows: crafted on · columns: scored by · diagonal: the metric's own robust") == len(
        radii
    )


def test_the_diagonal_is_each_metrics_own_robust_score(tiny_site: Path) -> None:
    (board,) = [t for t in tables(tiny_site / "index.html") if t.section == "sample-test-ref-n100"]
    for table in tables(tiny_site / PAGE):
        eps = table.section.split("-", 2)[2].replace("-", "/")
        for row in table.rows:
            if row[0] in METRICS:
                own = board.column(f"apgd l2 {eps}")[[r[0] for r in board.rows].index(row[0])]
                assert float(row[1 + METRICS.index(row[0])]) == round(float(own.split()[0]), 1), (eps, row[0])


def _near(path: Path, colour: str, tolerance: float = 16.0) -> int:
    """Pixels of the PNG within ``tolerance`` (RGB distance) of ``colour``."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=float).reshape(-1, 3)
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
    return int((np.linalg.norm(pixels - target, axis=1) < tolerance).sum())


def test_site_figures_and_swatches_use_the_figures_palette(tiny_site: Path) -> None:
    index = (tiny_site / "index.html").read_text()
    for metric in METRICS:
        colour = metric_style(metric)["color"]
        assert f'<span class="swatch" style="background-color: {colour}"></span><a href="metrics/{metric}.html">' in (
            index
        )
    lipsim = tiny_site / "img" / "lipsim-tiny__sample-test-ref-n100.png"
    convsim = tiny_site / "img" / "convsim-tiny__sample-test-ref-n100.png"
    orange, green = metric_style("lipsim-tiny")["color"], metric_style("convsim-tiny")["color"]
    assert _near(lipsim, orange) > 200 and _near(convsim, green) > 200  # its lines in its own colour
    assert _near(lipsim, green) == 0 and _near(convsim, orange) == 0  # and in no other metric's
