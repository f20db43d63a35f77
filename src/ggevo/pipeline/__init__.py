"""Entry points that wire a config to objects: training now; evaluation and reports build on it."""
