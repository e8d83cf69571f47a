"""The certificates table: a row per (metric, certificate), a column per l2 radius (certificates.md)."""

from __future__ import annotations

import pandas as pd

from lipsim_bench.formatting import format_eps
from lipsim_bench.report.tables import legacy_kind, to_markdown

#: The declared rank of the Lipschitz certificate, for score files that carry no ranks (``plot`` reads scores.csv
#: only): records declare ``Evaluation.table_rank``, and the report passes those.
LEGACY_RANKS = {"certified": 0}


def certificate_order(evaluation: str, ranks: dict[str, int] | None = None) -> tuple[int, str, float]:
    """Certificates in reading order: by their declared rank (a proof before a statistical certificate), then by
    name and by the swept value (``smoothing(sigma=0.12)`` before ``smoothing(sigma=0.5)``), whatever order the
    records came in. ``ranks`` holds the records' declarations; without them, :data:`LEGACY_RANKS`."""
    name, _, rest = evaluation.partition("(")
    value = rest.rstrip(")").partition("=")[2]
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    declared = ranks if ranks is not None else LEGACY_RANKS
    return (declared.get(name, LEGACY_RANKS.get(name, 1)), name, number)


def certificates_table(
    scores: pd.DataFrame, split: str, ranks: dict[str, int] | None = None, two_afc: bool = True
) -> pd.DataFrame:
    """Certified scores side by side: a row per (metric, certificate), a column per l2 radius, the natural
    score first. The wide table gives each certificate its own group of columns; this one puts the
    Lipschitz certificate and smoothing at each sigma on the same radii, one above the other.

    Another task than 2AFC (``two_afc`` False) may have several clean cells (recall(k=1), recall(k=5), map): the
    first column is then one of them, the first the rows hold, under its own label, for every metric."""
    rows = scores[scores["split"] == split]
    kinds = rows["kind"] if "kind" in rows.columns else rows["evaluation"].map(legacy_kind)
    clean = rows[kinds == "clean"]
    first = "natural"
    if not two_afc and len(clean):
        first = str(clean["evaluation"].iloc[0])
        clean = clean[clean["evaluation"] == first]
    certified, natural = (
        rows[kinds == "certificate"],
        clean.drop_duplicates("metric").set_index("metric")["score"],
    )
    radii = sorted({float(e) for e in certified["eps"].dropna()})
    metrics = list(dict.fromkeys(certified["metric"]))
    index = sorted(
        dict.fromkeys(zip(certified["metric"], certified["evaluation"])),
        key=lambda cell: (metrics.index(cell[0]), certificate_order(str(cell[1]), ranks)),
    )
    table = pd.DataFrame(
        index=pd.MultiIndex.from_tuples(index, names=["metric", "certificate"])
        if index
        else pd.MultiIndex.from_arrays([[], []], names=["metric", "certificate"]),
        columns=[first] + [format_eps(r) for r in radii],
        dtype=float,
    )
    for (metric, evaluation), part in certified.groupby(["metric", "evaluation"], sort=False):  # fills the sorted index
        table.loc[(metric, evaluation), first] = natural.get(metric, float("nan"))
        for r in part.itertuples():
            table.loc[(metric, evaluation), format_eps(float(r.eps))] = float(r.score)
    return table


def certificates_markdown(table: pd.DataFrame, title: str, footer: list[str]) -> str:
    """The certificates table as GitHub markdown: metric and certificate as the first two columns."""
    flat = table.copy()
    flat.index = [f"{m} | {e}" for m, e in table.index]
    flat.index.name = "metric | certificate"
    body = to_markdown(flat)
    lines = body.splitlines()
    lines[1] = "|---" + lines[1]  # the header's first cell spans two columns
    return f"{title}\n\n" + "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in footer)
