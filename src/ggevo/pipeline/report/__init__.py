"""Finished runs read back: the report's tables and figures, the density-budget table, the bench
leaderboard, test-split evaluation (with a linear probe of an encoder's features) and export of a
front member. Imports from ``core``, ``record``, ``score`` and ``run``."""
