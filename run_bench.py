#!/usr/bin/env python
"""LipSim Bench: ``python run_bench.py --help``. All logic lives in :mod:`bench.cli`."""

import os
import sys

# Spinning OpenMP threads make torch 30-100x slower on a CPU shared with other work; set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
