"""Leaderboard submissions: an entry's JSON schema, a run's own entry, and ``validate`` re-checking one."""
