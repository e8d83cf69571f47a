"""The transfer matrix from per-(source, triplet) rows: cells, order, the markdown table and the heatmap."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lipsim_bench.report.transfer import transfer_figure, transfer_markdown, transfer_matrix, write_transfer


def _rows() -> pd.DataFrame:
    """Two scoring metrics (b first in the run) on the examples of two sources, at two radii, two groups."""
    rows = []
    for eps in (0.5, 1.0):
        for metric in ("b", "a"):
            for source in ("a", "b"):
                for i, agreement in enumerate([1.0, 0.0, 1.0, 0.5]):
                    low = 0.0 if (source == metric and eps == 1.0 and i == 0) else agreement  # one more flip
                    rows.append(
                        dict(
                            evaluation="transfer", attack="apgd", norm="l2", eps=eps, source=source, metric=metric,
                            group="g1" if i < 3 else "g2", id=str(i), agreement=low,
                        )
                    )  # fmt: skip
    return pd.DataFrame(rows)


def test_cells_are_the_mean_agreement_in_run_order() -> None:
    matrix = transfer_matrix(_rows())
    assert list(matrix.columns) == ["attack", "norm", "eps", "source", "metric", "score", "n"]
    first = matrix[matrix["eps"] == 0.5]
    assert list(zip(first["source"], first["metric"])) == [("b", "b"), ("b", "a"), ("a", "b"), ("a", "a")]
    assert set(first["score"]) == {62.5} and set(matrix["n"]) == {4}
    second = matrix[matrix["eps"] == 1.0].set_index(["source", "metric"])["score"]
    assert second[("a", "a")] == second[("b", "b")] == 37.5 and second[("a", "b")] == 62.5


def test_markdown_has_a_table_per_radius_with_the_diagonal_in_bold() -> None:
    text = transfer_markdown(transfer_matrix(_rows()))
    assert text.count("### apgd l2 eps") == 2
    assert "| crafted on \\ scored by | b | a |" in text
    assert "| b | **37.5** | 62.5 |" in text and "| a | 62.5 | **37.5** |" in text


def test_heatmap_has_a_panel_per_radius_and_files_are_written(tmp_path: Path) -> None:
    figure = transfer_figure(transfer_matrix(_rows()))
    assert figure is not None and len([ax for ax in figure.axes if ax.get_title()]) == 2
    written = write_transfer(tmp_path, _rows())
    assert written == ["transfer.csv", "transfer.md", "transfer.png", "transfer.pdf"]
    assert all((tmp_path / name).is_file() for name in written)
    assert (
        write_transfer(tmp_path / "empty", _rows().iloc[:0]) == []
        and transfer_figure(transfer_matrix(_rows().iloc[:0])) is None
    )
