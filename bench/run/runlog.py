"""The run log: ``run.log`` in the run folder, one line per event, appended across reruns.

What a researcher reads the morning after: when the run started and with what, each unit as it
was computed or reused (with its score, time, and when a reused one was computed), and the end.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lipsim_bench.formatting import format_eps
from lipsim_bench.run.records import Unit


class RunLog:
    """Append-only text log; disabled on non-zero ranks (and in memory-only runs)."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {message}\n")

    def warn(self, message: str) -> None:
        """A problem the user must see now and find in the log later: run.log and the console."""
        if not self.enabled:
            return
        try:
            self.write(message)
        except OSError:
            pass  # a read-only folder (e.g. under `report`) must not hide the warning itself
        console(message)

    def start(self, config: dict[str, Any], n_items: int, world_size: int, items: str = "triplets") -> None:
        self.write(f"start: {n_items} {items}, {world_size} process(es), argv {' '.join(sys.argv)}")
        self.write(f"config: {json.dumps(config, sort_keys=True, default=str)}")

    def unit(self, action: str, unit: Unit, record: dict[str, Any], seconds: float | None) -> None:
        threat = record.get("threat")
        where = f" {threat['norm']} eps {format_eps(threat['eps'])}" if threat else ""
        headline = next((r for r in record.get("scores", []) if r.get("split") == unit.split), None)
        score = (
            f" score {headline['score']:.2f}" if headline else ("" if record.get("applies") else " (does not apply)")
        )
        took = f" in {seconds:.1f} s" if seconds is not None else f" (computed {computed_at(record)})"
        name = (
            str(headline.get("evaluation") or unit.evaluation) if headline else unit.evaluation
        )  # smoothing(sigma=0.25)
        self.write(f"{action}: {unit.metric} {name}{where}{score}{took} [{unit.stem()}]")

    def finish(self, out_dir: Path, reused: int, total: int) -> None:
        self.write(f"done: {total - reused} unit(s) computed, {reused} reused; records in {out_dir}/records")


def console(message: str) -> None:
    """One line on stderr that never shares its line with a progress bar."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def computed_at(record: dict[str, Any]) -> str:
    return str((record.get("provenance") or {}).get("time", "at an unknown time"))
