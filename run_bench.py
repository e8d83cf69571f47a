#!/usr/bin/env python
"""LipSim Bench: ``python run_bench.py --help``. All logic lives in :mod:`bench.cli`."""

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
