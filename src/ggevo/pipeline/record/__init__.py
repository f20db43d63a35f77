"""The record of runs: the MLflow store and its checks, the one recorder that writes a run's MLflow run and
run folder, the run folder's files (``front.csv``, ``history.csv``) and a sweep's record read back for
reports. Imports from ``core`` only (and ``ggevo.lit`` for the status schema)."""
