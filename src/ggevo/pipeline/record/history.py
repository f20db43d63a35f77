"""A run's history: each generation's status by step, as the run folder's ``history.csv``.

The recorder keeps the status every generation hands it (``ggevo.lit.status.STATUS_KEYS``: hypervolume,
evaluations spent, best minibatch loss, …) and writes it here beside the front, so a report can draw
hypervolume by generation and loss by evaluations from files, without the MLflow store.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

HISTORY = "history.csv"

History = dict[str, dict[int, float]]  # metric -> step -> value, as MLflow's metric histories


def add_to_history(history: History, metrics: Mapping[str, float], step: int, keys: tuple[str, ...]) -> None:
    """The values of ``keys`` among ``metrics`` added to ``history`` at ``step`` (a step logged again replaces)."""
    for key in keys:
        if key in metrics:
            history.setdefault(key, {})[int(step)] = float(metrics[key])


def write_history_csv(path: Path, history: History) -> None:
    """One row per step (rising), one column per metric; a metric not logged at a step is an empty cell.
    Values with 8 significant digits, as ``front.csv``."""
    keys = sorted(history)
    steps = sorted({s for values in history.values() for s in values})
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", *keys])
        for step in steps:
            w.writerow([step, *(f"{history[k][step]:.8g}" if step in history[k] else "" for k in keys)])


def read_history_csv(path: Path) -> History:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        keys = [k for k in reader.fieldnames or () if k != "step"]
        history: History = {k: {} for k in keys}
        for row in reader:
            for k in keys:
                if row[k] != "":
                    history[k][int(row["step"])] = float(row[k])
    return history


def curve(history: History, key: str) -> list[float]:
    """The values of ``key`` by rising step (empty if never logged)."""
    values = history.get(key, {})
    return [values[s] for s in sorted(values)]
