#!/usr/bin/env python
"""LipSim Bench: ``python run_bench.py --help``. All logic lives in :mod:`lipsim_bench.cli`."""

import os
import sys

# Spinning OpenMP threads make torch 30-100x slower on a CPU shared with other work; set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    from lipsim_bench.cli import main
except ModuleNotFoundError as error:
    if error.name != "lipsim_bench":
        raise
    print(
        "error: the package lipsim_bench is not installed: run `python -m pip install -e .` in this folder first",
        file=sys.stderr,
    )
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main())
