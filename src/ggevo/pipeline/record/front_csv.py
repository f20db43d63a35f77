"""``front.csv``: a run's final front, one row per member, the file every reader of a front reads
(the report, the leaderboard, evaluation, export, the stack, a sweep's record)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

COLUMNS = ("density", "minibatch_loss", "train_loss", "val_loss", "knee")
# written after COLUMNS when the task has them
OPTIONAL = ("train_accuracy", "val_accuracy", "train_explained_variance", "val_explained_variance",
            "test_loss", "test_accuracy", "test_explained_variance", "dominated")


def write_front_csv(path: Path, table: dict[str, torch.Tensor]) -> None:
    """``table``'s columns (``COLUMNS``, then the ``OPTIONAL`` ones it has, then any other), 8 significant digits."""
    known = (*COLUMNS, *OPTIONAL)
    columns = [c for c in known if c in table] + [c for c in table if c not in known]  # then any handed in
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for row in zip(*(table[c].tolist() for c in columns)):
            w.writerow([f"{v:.8g}" for v in row])


def read_front_csv(path: Path) -> dict[str, list[float]]:
    """Every column of a front CSV (``COLUMNS``, and ``OPTIONAL`` ones where written)."""
    with open(path) as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return {c: [float(r[c]) for r in rows] for c in reader.fieldnames or ()}
