"""The static leaderboard site (``run_bench.py leaderboard``): tables and pages from run folders, no server."""
