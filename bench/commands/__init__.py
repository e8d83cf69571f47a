"""Commands beside ``run`` whose parser and work need their own module (``compare``, ``leaderboard``, ``entry``,
``validate``): bench/cli.py imports one only when it is called."""
